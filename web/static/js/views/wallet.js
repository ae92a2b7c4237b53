// views/wallet.js: the wallet balance and the recent ledger entries.

import { api, qs } from '../api.js';
import { h, errorBox, tableWrap, when, cents } from '../ui.js';

/** wallet renders the balance and recent charges. */
export async function wallet(page, { signal }) {
  const balanceArea = h('div', {}, h('p', { class: 'muted' }, 'Loading balance…'));
  const ledgerArea = h('div', {}, h('p', { class: 'muted' }, 'Loading ledger…'));
  page.append(
    h('h1', {}, 'Wallet'),
    balanceArea,
    h('section', { 'aria-labelledby': 'ledger-title' }, h('h2', { id: 'ledger-title' }, 'Recent activity'), ledgerArea),
  );
  const [balance, ledger] = await Promise.allSettled([
    api.get('/api/balance', { signal }),
    api.get(`/api/ledger${qs({ limit: 20 })}`, { signal }),
  ]);
  if (signal.aborted) return;
  if (balance.status === 'fulfilled') {
    const b = balance.value ?? {};
    const negative = Number(b.balance_cents) < 0;
    balanceArea.replaceChildren(h('div', { class: 'card balance' },
      h('p', { class: 'balance-label' }, 'Balance'),
      h('p', { id: 'balance', class: negative ? 'big negative' : 'big', 'data-cents': String(b.balance_cents ?? '') },
        cents(b.balance_cents), ' ', h('span', { class: 'muted small' }, (b.currency ?? 'usd').toUpperCase())),
      negative ? h('p', { class: 'warn' }, 'The balance is negative: runs are billed after the fact (postpaid).') : null,
      h('dl', { class: 'facts' },
        h('dt', {}, 'Deposited, all time'), h('dd', {}, cents(b.lifetime_deposited_cents)),
        h('dt', {}, 'Spent, all time'), h('dd', {}, cents(b.lifetime_spent_cents)))));
  } else {
    balanceArea.replaceChildren(errorBox(balance.reason, 'Could not load the balance'));
  }
  if (ledger.status === 'fulfilled') {
    const entries = ledger.value?.entries ?? [];
    ledgerArea.replaceChildren(entries.length === 0
      ? h('p', { class: 'muted' }, 'No charges or deposits yet.')
      : tableWrap('Ledger', h('table', { id: 'ledger' },
        h('caption', { class: 'sr-only' }, 'The 20 most recent ledger entries'),
        h('thead', {}, h('tr', {}, ['Time', 'Kind', 'Amount', 'Run'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, entries.map((e) => h('tr', { 'data-kind': e.kind },
          h('td', {}, when(e.created_at)),
          h('td', {}, e.kind),
          h('td', { class: 'num' }, cents(e.amount_cents)),
          h('td', {}, e.run_id ? h('code', { class: 'small' }, e.run_id) : '—'))))), { stack: true }));
  } else {
    ledgerArea.replaceChildren(errorBox(ledger.reason, 'Could not load recent activity'));
  }
}
