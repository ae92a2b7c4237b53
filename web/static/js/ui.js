// ui.js: the small DOM vocabulary every view shares: element builders, formatters, error
// boxes, the one-time confirmation dialog and copy-to-clipboard.

const SVG_NS = 'http://www.w3.org/2000/svg';

function apply(el, attrs) {
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2).toLowerCase(), v);
    } else if (k === 'class') {
      el.setAttribute('class', v);
    } else if (k === 'text') {
      el.textContent = v;
    } else if (k in el && !k.includes('-') && typeof el[k] !== 'function' && !(el instanceof SVGElement)) {
      el[k] = v;
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** h builds an HTML element: h('a', {href: '#/x'}, 'text', child, [more]). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

/** s builds an SVG element. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

let uid = 0;
/** id returns a page-unique element id with the given prefix. */
export function id(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** errorBox renders an error (ApiError or any Error) as an alert. */
export function errorBox(err, prefix) {
  const msg = err?.message || String(err);
  const code = err?.code && !String(err.code).startsWith('HTTP_') ? ` (${err.code})` : '';
  return h('p', { class: 'error', role: 'alert' }, prefix ? `${prefix}: ` : '', msg, code);
}

/** busy disables a button while fn runs and restores it after. */
export async function busy(button, fn) {
  const label = button.textContent;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await fn();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    button.textContent = label;
  }
}

/** field builds a labelled form control with a place for its error message. */
export function field(label, control, hint) {
  const cid = control.id || (control.id = id('f'));
  const errId = `${cid}-error`;
  const hintId = hint ? `${cid}-hint` : null;
  control.setAttribute('aria-describedby', [hintId, errId].filter(Boolean).join(' '));
  const isCheck = control.type === 'checkbox';
  return h(
    'div',
    { class: isCheck ? 'field check' : 'field', 'data-field': control.name || '' },
    isCheck ? [control, h('label', { for: cid }, label)] : [h('label', { for: cid }, label), control],
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null,
    h('p', { class: 'field-error', id: errId, 'aria-live': 'polite' }),
  );
}

/** setFieldError shows msg next to the named control of form (or clears it with ''). */
export function setFieldError(form, name, msg) {
  const control = form.elements.namedItem(name);
  if (!control || !control.id) return false;
  const err = document.getElementById(`${control.id}-error`);
  if (!err) return false;
  err.textContent = msg;
  if (msg) control.setAttribute('aria-invalid', 'true');
  else control.removeAttribute('aria-invalid');
  return true;
}

/** clearFieldErrors removes every field error of form. */
export function clearFieldErrors(form) {
  for (const el of form.querySelectorAll('.field-error')) el.textContent = '';
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
}

/**
 * fieldFor names the form field an API message is about: the error's own field when the API
 * gives one, else the known name that appears earliest in the message (longest on ties).
 */
export function fieldFor(err, names) {
  if (err?.field && names.includes(err.field)) return err.field;
  if (err?.code === 'SLUG_TAKEN' && names.includes('slug')) return 'slug';
  const msg = String(err?.message ?? '');
  let best = null;
  let bestAt = Infinity;
  for (const n of names) {
    const m = new RegExp(`(^|[^a-zA-Z0-9_])${n}($|[^a-zA-Z0-9_])`).exec(msg);
    if (!m) continue;
    const at = m.index + m[1].length;
    if (at < bestAt || (at === bestAt && n.length > best.length)) {
      best = n;
      bestAt = at;
    }
  }
  return best;
}

/** confirmDialog asks a yes/no question in a modal dialog; resolves true on confirm. */
export function confirmDialog(question, confirmLabel, detail) {
  return new Promise((resolve) => {
    const titleId = id('dlg');
    const dlg = h(
      'dialog',
      { class: 'confirm', 'aria-labelledby': titleId },
      h('h2', { id: titleId }, question),
      detail ? h('p', {}, detail) : null,
      h(
        'form',
        { method: 'dialog', class: 'actions' },
        h('button', { value: 'cancel', class: 'secondary', autofocus: true }, 'Cancel'),
        h('button', { value: 'ok', class: 'danger' }, confirmLabel),
      ),
    );
    dlg.addEventListener('close', () => {
      resolve(dlg.returnValue === 'ok');
      dlg.remove();
    });
    document.body.append(dlg);
    dlg.showModal();
  });
}

/** copyButton copies the text that getText returns and says whether it worked. */
export function copyButton(getText, label = 'Copy') {
  const status = h('span', { class: 'copy-status', role: 'status', 'aria-live': 'polite' });
  const btn = h('button', { type: 'button', class: 'secondary copy' }, label);
  btn.addEventListener('click', async () => {
    const text = getText();
    try {
      await navigator.clipboard.writeText(text);
      status.textContent = 'Copied.';
    } catch {
      status.textContent = 'Copy failed: select the text and copy it by hand.';
    }
  });
  return h('span', { class: 'copy-wrap' }, btn, status);
}

/** notice shows a short message in the page-wide status line. */
export function notice(msg) {
  const el = document.getElementById('notice');
  if (el) el.textContent = msg;
}

/**
 * tableWrap makes a wide table scroll on its own at phone width, reachable by keyboard. With
 * stack, the rows of a list table become cards at phone width instead: each cell is labelled
 * with its column's heading (data-label, shown by the style sheet).
 */
export function tableWrap(label, table, { stack = false } = {}) {
  if (stack) {
    const heads = [...table.querySelectorAll('thead th')].map((th) => th.textContent);
    for (const tr of table.querySelectorAll('tbody tr')) {
      [...tr.children].forEach((cell, i) => {
        if (cell.tagName === 'TD' && heads[i]) cell.dataset.label = heads[i];
      });
    }
    return h('div', { class: 'table-wrap stack', role: 'region', 'aria-label': label }, table);
  }
  return h('div', { class: 'table-wrap', role: 'region', 'aria-label': label, tabindex: '0' }, table);
}

/** cents formats an amount in cents as dollars, keeping the API's 4-decimal cent precision. */
export function cents(c) {
  const n = Number(c);
  if (c === null || c === undefined || !Number.isFinite(n)) return '—';
  const dollars = n / 100;
  // 6 dollar decimals = 4 cent decimals; drop the zeros beyond the 2 everyone expects.
  const out = Math.abs(dollars).toFixed(6).replace(/0{1,4}$/, '');
  return `${dollars < 0 ? '−' : ''}$${out}`;
}

/** ms formats a duration in milliseconds. */
export function ms(v) {
  const n = Number(v);
  if (v === null || v === undefined || !Number.isFinite(n)) return '—';
  return n >= 10000 ? `${(n / 1000).toFixed(1)} s` : `${Math.round(n)} ms`;
}

/** num formats an integer count. */
export function num(v) {
  const n = Number(v);
  return v === null || v === undefined || !Number.isFinite(n) ? '—' : n.toLocaleString('en-US');
}

/** when formats an RFC 3339 time in the reader's locale, with the raw value as a tooltip. */
export function when(t) {
  if (!t) return h('span', {}, '—');
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return h('span', {}, String(t));
  return h('time', { datetime: t, title: t }, d.toLocaleString());
}

/** statusBadge renders a run status. */
export function statusBadge(status) {
  return h('span', { class: `badge status-${status}` }, status ?? 'unknown');
}

/** pretty renders a JSON-ish value for a <pre>. */
export function pretty(v) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') {
    try {
      return JSON.stringify(JSON.parse(v), null, 2);
    } catch {
      return v;
    }
  }
  return JSON.stringify(v, null, 2);
}

/** esc quotes a string for a POSIX shell command line. */
export function shellQuote(v) {
  return `'${String(v).replace(/'/g, `'\\''`)}'`;
}
