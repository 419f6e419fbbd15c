/* A knowledge base's settings (templates/settings.html): only what changed is sent.
   Without an index, everything goes to PATCH /v1/kbs/{kb}. With one, the embedding
   model, chunking, cleaning and redaction belong to index versions (the API refuses to
   patch them): a change to them builds a new version (POST /v1/kbs/{kb}/versions) that
   takes effect once promoted on the Versions tab, and the description is patched. */
'use strict';

(() => {
  const { api, el, show, seg } = window.ragops;
  const { changes, keep, revert, clearErrors, showError } = window.ragopsKbFields;
  const root = document.getElementById('kb-root');
  const kb = root.dataset.kb;
  const hasIndex = root.dataset.hasIndex === 'true';
  const versionsUrl = root.dataset.versionsUrl;
  const form = document.getElementById('settings');
  const error = document.getElementById('settings-error');
  const ok = document.getElementById('settings-ok');
  const button = document.getElementById('save');
  const PER_VERSION = ['embedding_model', 'chunking', 'cleaning', 'redaction'];

  /* {patch: what PATCH /v1/kbs/{kb} takes, build: what needs a new index version}. */
  function split(body) {
    const parts = { patch: {}, build: {} };
    for (const [key, value] of Object.entries(body)) {
      parts[hasIndex && PER_VERSION.includes(key) ? 'build' : 'patch'][key] = value;
    }
    return parts;
  }

  function described(body, prefix = '') {
    return Object.entries(body).map(([key, value]) => (value !== null && typeof value === 'object' && !Array.isArray(value)
      ? described(value, `${prefix}${key}.`)
      : `${prefix}${key} ${Array.isArray(value) ? value.join(', ') || '(none)' : JSON.stringify(value)}`)).join('; ');
  }

  function label() {
    const { build } = split(changes(form));
    button.textContent = Object.keys(build).length ? 'Save and build a new version' : 'Save';
  }
  form.addEventListener('input', label);
  form.addEventListener('change', label);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form, error);
    show(ok, '');
    const { patch, build } = split(changes(form));
    if (!Object.keys(patch).length && !Object.keys(build).length) {
      show(ok, 'Nothing to save: no setting was changed.');
      return;
    }
    button.disabled = true;
    try {
      let version = null;
      if (Object.keys(build).length) {
        const r = await api('POST', `kbs/${seg(kb)}/versions`, build);
        if (!r.ok) {
          showError(form, r.message, error);
          return;
        }
        version = r.data.number;
        // The KB keeps the live version's settings until the new one is promoted.
        revert(form, PER_VERSION);
      }
      if (Object.keys(patch).length) {
        const r = await api('PATCH', `kbs/${seg(kb)}`, patch);
        if (!r.ok) {
          showError(form, r.message, error);
          if (version !== null) saved(version, build, false);
          return;
        }
      }
      keep(form);
      saved(version, build, Object.keys(patch).length > 0, patch);
    } finally {
      button.disabled = false;
      label();
    }
  });

  function saved(version, build, patched, patch = {}) {
    if (version === null) {
      const perVersion = PER_VERSION.some((key) => key in patch);
      show(ok, perVersion
        ? 'Saved. There is no index yet, so no new index version is needed: the documents uploaded next are processed with these settings.'
        : 'Saved.');
      return;
    }
    ok.replaceChildren(
      patched ? 'Description saved. ' : '',
      `These changes need a new index version: version ${version} is being built from the documents with ${described(build)}. `,
      'It takes effect once you promote it on the ',
      el('a', { href: versionsUrl, text: 'Versions tab' }),
      '; until then the live version answers, and the fields here keep its settings.');
    ok.hidden = false;
  }
})();
