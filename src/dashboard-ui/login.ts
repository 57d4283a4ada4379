// The login page: `weft dashboard` prints a link whose fragment carries the token (a fragment
// is never sent to a server or written to its logs); the page moves it into the form, drops
// it from the address bar and history, and posts it once.
const form = document.getElementById('login') as HTMLFormElement | null;
const input = document.getElementById('token') as HTMLInputElement | null;
const match = /^#token=([A-Za-z0-9_-]+)$/.exec(window.location.hash);
if (form !== null && input !== null && match?.[1] !== undefined) {
  input.value = match[1];
  history.replaceState(null, '', '/login');
  form.submit();
}
