// views/auth.js: sign in and sign up. Both end with the JWT in sessionStorage.

import { api, session } from '../api.js';
import { h, field, busy, errorBox, setFieldError, clearFieldErrors, fieldFor } from '../ui.js';

function authForm(page, { title, action, submit, other, path, minPassword }, go) {
  const status = h('div', { class: 'form-status' });
  const email = h('input', { name: 'email', type: 'email', autocomplete: 'username', required: true });
  const password = h('input', {
    name: 'password',
    type: 'password',
    autocomplete: action === 'register' ? 'new-password' : 'current-password',
    required: true,
    minLength: minPassword,
  });
  const button = h('button', { type: 'submit' }, submit);
  const form = h(
    'form',
    { class: 'card narrow', novalidate: true },
    field('Email', email),
    field('Password', password, minPassword ? `At least ${minPassword} characters.` : null),
    h('div', { class: 'actions' }, button),
    status,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    status.replaceChildren();
    clearFieldErrors(form);
    if (!email.value.trim()) {
      setFieldError(form, 'email', 'Enter your email address.');
      email.focus();
      return;
    }
    if (!password.value) {
      setFieldError(form, 'password', 'Enter your password.');
      password.focus();
      return;
    }
    await busy(button, async () => {
      try {
        const res = await api.post(
          `/api/auth/${action}`,
          { email: email.value.trim(), password: password.value },
          { auth: false },
        );
        if (!res?.token) throw new Error('The gateway did not return a session token.');
        session.set(res.token, res.user);
        go('/endpoints');
      } catch (err) {
        const name = fieldFor(err, ['email', 'password']);
        if (err.status === 400 && name) setFieldError(form, name, err.message);
        else status.replaceChildren(errorBox(err));
      }
    });
  });
  page.append(
    h('h1', {}, title),
    form,
    h('p', { class: 'narrow' }, other, ' ', h('a', { href: `#${path}` }, path === '/signup' ? 'Create an account' : 'Sign in')),
  );
  email.focus();
}

/** signIn renders the sign-in page. */
export async function signIn(page, { go }) {
  authForm(page, { title: 'Sign in', action: 'login', submit: 'Sign in', other: 'New here?', path: '/signup' }, go);
}

/** signUp renders the account creation page. */
export async function signUp(page, { go }) {
  authForm(
    page,
    { title: 'Create an account', action: 'register', submit: 'Create account', other: 'Have an account?', path: '/signin', minPassword: 8 },
    go,
  );
}
