/* Shared by the console's pages: calls to the API through the console's bridge
   (/console/api/<path> is /v1/<path> with the session's key; a request that changes
   something carries the session's CSRF token), and small DOM helpers. */
'use strict';

window.ragops = (() => {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : '';
  const API = '/console/api/';

  function signInAgain() {
    const next = encodeURIComponent(location.pathname);
    location.assign(`/console/sign-in?notice=expired&next=${next}`);
  }

  function errorMessage(status, data) {
    if (status >= 200 && status < 400) return '';
    if (data && data.error && data.error.message) return data.error.message;
    if (status === 0) return 'The server could not be reached; check the connection and try again.';
    return `The server answered ${status}; try again.`;
  }

  /* fetch() through the bridge; never throws. Resolves to {ok, status, data, message,
     response}; `raw` leaves the body unread (a stream). A 401 means the session ended. */
  async function api(method, path, body, { raw = false } = {}) {
    const init = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store' };
    if (method !== 'GET') init.headers['X-CSRF-Token'] = csrf;
    if (body instanceof FormData) {
      init.body = body;
    } else if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(API + path, init);
    } catch (err) {
      return { ok: false, status: 0, data: null, message: errorMessage(0, null) };
    }
    if (response.status === 401) signInAgain();
    if (raw && response.ok) return { ok: true, status: response.status, data: null, message: '', response };
    let data = null;
    if (response.status !== 204) {
      try { data = await response.json(); } catch (err) { data = null; }
    }
    return { ok: response.ok, status: response.status, data, message: errorMessage(response.status, data) };
  }

  /* XMLHttpRequest upload with progress (fetch has no upload progress). */
  function upload(path, form, onProgress) {
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', API + path);
      xhr.setRequestHeader('X-CSRF-Token', csrf);
      xhr.setRequestHeader('Accept', 'application/json');
      xhr.upload.addEventListener('progress', (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); });
      xhr.addEventListener('load', () => {
        if (xhr.status === 401) signInAgain();
        let data = null;
        try { data = JSON.parse(xhr.responseText); } catch (err) { data = null; }
        const ok = xhr.status >= 200 && xhr.status < 300;
        resolve({ ok, status: xhr.status, data, message: errorMessage(xhr.status, data) });
      });
      xhr.addEventListener('error', () => resolve({ ok: false, status: 0, data: null, message: errorMessage(0, null) }));
      xhr.send(form);
    });
  }

  /* el('td', {className: 'num', text: '3'}, child, ...) */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'text') node.textContent = value;
      else if (key === 'className') node.className = value;
      else if (key === 'dataset') Object.assign(node.dataset, value);
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : value);
    }
    for (const child of children) {
      if (child !== undefined && child !== null && child !== false) node.append(child);
    }
    return node;
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  function show(node, message) {
    node.textContent = message || '';
    node.hidden = !message;
  }

  /* A timestamp as stored (UTC), to the minute: 2026-11-30 03:44. */
  function when(iso) {
    if (!iso) return '';
    return String(iso).replace('T', ' ').slice(0, 16);
  }

  function size(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  }

  const seg = encodeURIComponent;

  return { api, upload, el, setText, show, when, size, seg, csrf };
})();
