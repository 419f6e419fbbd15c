/* Knowledge bases: the list (GET /v1/kbs) and the create form (POST /v1/kbs). */
'use strict';

(() => {
  const { api, el, show, when, seg } = window.ragops;
  const list = document.getElementById('kb-list');
  const table = document.getElementById('kb-table');
  const status = document.getElementById('kb-status');
  const empty = document.getElementById('kb-empty');
  const canDocuments = list.dataset.canDocuments === 'true';

  async function load() {
    const r = await api('GET', 'kbs');
    if (!r.ok) {
      status.textContent = `The knowledge bases could not be loaded: ${r.message}`;
      status.className = 'error';
      return;
    }
    const kbs = r.data.data;
    const body = table.tBodies[0];
    body.replaceChildren(...kbs.map(row));
    table.hidden = kbs.length === 0;
    empty.hidden = kbs.length !== 0;
    status.className = 'status';
    status.textContent = kbs.length === 1 ? '1 knowledge base' : `${kbs.length} knowledge bases`;
  }

  function row(kb) {
    const base = `/console/kbs/${seg(kb.name)}`;
    const name = el('a', { href: canDocuments ? base : `${base}/playground`, text: kb.name });
    const links = el('td', { className: 'actions' });
    if (canDocuments) links.append(el('a', { href: base, text: 'Documents' }), ' · ');
    links.append(el('a', { href: `${base}/playground`, text: 'Playground' }));
    return el('tr', { dataset: { kb: kb.name } },
      el('th', { scope: 'row' }, name, kb.description ? el('span', { className: 'hint', text: ` ${kb.description}` }) : null),
      el('td', { className: 'num', text: String(kb.document_count) }),
      el('td', { className: 'num', text: kb.live_version === null ? 'none yet' : String(kb.live_version) }),
      el('td', { className: 'mono', text: kb.embedding_model }),
      el('td', { text: when(kb.created_at) }),
      links);
  }

  const form = document.getElementById('create-kb');
  // Which input an API message is about (the messages name the field or the KB name).
  const FIELDS = [
    [/^name\b|knowledge base name|already exists/i, 'name'],
    [/embedding.model/i, 'embedding_model'],
    [/^description\b/i, 'description'],
  ];
  if (form) {
    const error = document.getElementById('create-error');
    const ok = document.getElementById('create-ok');
    const button = form.querySelector('button[type="submit"]');
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      show(error, '');
      show(ok, '');
      for (const input of form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
      const body = { name: form.elements.name.value.trim() };
      const description = form.elements.description.value.trim();
      const model = form.elements.embedding_model.value.trim();
      if (description) body.description = description;
      if (model) body.embedding_model = model;
      button.disabled = true;
      const r = await api('POST', 'kbs', body);
      button.disabled = false;
      if (!r.ok) {
        // The API's own message, shown as is; the field it is about is marked invalid.
        show(error, r.message);
        const field = FIELDS.find(([pattern]) => pattern.test(r.message));
        const input = field ? form.elements[field[1]] : null;
        if (input) {
          input.setAttribute('aria-invalid', 'true');
          input.setAttribute('aria-errormessage', 'create-error');
          input.focus();
        }
        return;
      }
      form.reset();
      ok.replaceChildren(`Created ${r.data.name}. `,
        el('a', { href: `/console/kbs/${seg(r.data.name)}`, text: 'Upload documents to it' }), '.');
      ok.hidden = false;
      await load();
    });
  }

  load();
})();
