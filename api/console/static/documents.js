/* A knowledge base's documents: uploads (one request per file or ZIP, with progress),
   the ingestion panel (GET /v1/kbs/{kb}/ingestion: queue, throughput, ETA), the
   document list kept live by polling GET /v1/kbs/{kb}/documents with the filters as
   its query (filename text, status, type, language, metadata key=value), each
   document's stage as it moves, and the owner's actions: retry/reprocess, delete,
   erase with its receipt. */
'use strict';

(() => {
  const { api, upload, el, setText, show, when, size, seg } = window.ragops;
  const root = document.getElementById('kb-root');
  const kb = root.dataset.kb;
  const can = {
    reprocess: root.dataset.canReprocess === 'true',
    delete: root.dataset.canDelete === 'true',
    erase: root.dataset.canErase === 'true',
  };
  const anyAction = can.reprocess || can.delete || can.erase;
  const base = `kbs/${seg(kb)}/documents`;
  const PAGE = 500;
  // Statuses a document leaves only when something new happens to it.
  const FINAL = new Set(['indexed', 'failed', 'superseded']);
  const LABELS = { pending: 'queued' };
  const label = (status) => LABELS[status] || status || 'no revision';
  // Counts read in pipeline order: what is on its way, then where documents ended.
  const ORDER = ['pending', 'parsing', 'cleaning', 'redacting', 'chunking', 'embedding',
    'indexing', 'indexed', 'failed', 'superseded'];
  const rank = (status) => (ORDER.includes(status) ? ORDER.indexOf(status) : ORDER.length);
  // The stages a document moves through, queued (0) to indexed (STEPS).
  const STEPS = ORDER.indexOf('indexed');

  const table = document.getElementById('doc-table');
  const tbody = table.tBodies[0];
  const counts = document.getElementById('doc-counts');
  const empty = document.getElementById('doc-empty');
  const docError = document.getElementById('doc-error');
  const filters = document.getElementById('doc-filters');
  const filter = document.getElementById('status-filter');
  const fields = {
    q: document.getElementById('f-q'),
    status: filter,
    media_type: document.getElementById('f-type'),
    language: document.getElementById('f-language'),
    metadata: document.getElementById('f-meta'),
  };
  const emptyText = empty.textContent;
  const rows = new Map();
  let facetsFor = null; // the status counts the type/language choices were last read at
  let timer = null;
  let loading = false;
  let reloadAfter = false;
  let uploadsRunning = 0;

  // -- the document list ------------------------------------------------------------

  async function load() {
    if (loading) { reloadAfter = true; return; }
    clearTimeout(timer);
    if (document.hidden) { schedule(2000); return; }
    loading = true;
    const query = filterQuery();
    const facets = facetsFor === null ? '&facets=true' : '';
    const [r] = await Promise.all([
      api('GET', `${base}?limit=${PAGE}${facets}${query ? `&${query}` : ''}`),
      ingestion ? loadIngestion() : null,
    ]);
    loading = false;
    if (reloadAfter) { reloadAfter = false; load(); return; }
    fields.metadata.removeAttribute('aria-invalid');
    if (!r.ok) {
      show(docError, `The documents could not be loaded: ${r.message}`);
      if (r.status === 422 && /metadata/.test(r.message)) fields.metadata.setAttribute('aria-invalid', 'true');
      schedule(10000);
      return;
    }
    show(docError, '');
    if (r.data.facets) showFacets(r.data.facets, r.data.counts);
    else if (facetsFor !== JSON.stringify(r.data.counts)) facetsFor = null; // read again next time
    render(r.data);
    const busy = Object.entries(r.data.counts).some(([status, n]) => n > 0 && !FINAL.has(status))
      || uploadsRunning > 0;
    schedule(busy ? 1000 : 10000);
  }

  // -- filters ----------------------------------------------------------------------

  function filterValues() {
    const values = {};
    for (const [name, input] of Object.entries(fields)) {
      if (input.value.trim()) values[name] = input.value.trim();
    }
    return values;
  }

  /* The filters as the list route's query: metadata "a=1; b=2" is two `metadata`. */
  function filterQuery() {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(filterValues())) {
      if (name === 'metadata') {
        for (const pair of value.split(';').map((p) => p.trim()).filter(Boolean)) params.append(name, pair);
      } else {
        params.append(name, value);
      }
    }
    return params.toString();
  }

  function showFacets(facets, counts) {
    facetsFor = JSON.stringify(counts);
    fillChoices(fields.media_type, facets.media_type, 'all types');
    fillChoices(fields.language, facets.language, 'all languages', ['en', 'es', 'ru', 'other']);
  }

  /* The choices the KB's documents have (with their counts), keeping the chosen one. */
  function fillChoices(select, counts, allLabel, always = []) {
    const chosen = select.value;
    const values = [...new Set([...always, ...Object.keys(counts).filter((v) => v !== 'none'), chosen])]
      .filter(Boolean);
    const options = [el('option', { value: '', text: allLabel })].concat(values.map((v) => el('option', {
      value: v, text: counts[v] ? `${v} (${counts[v]})` : v,
    })));
    select.replaceChildren(...options);
    select.value = chosen;
  }

  function filtersToUrl() {
    const query = filterQuery();
    history.replaceState(null, '', location.pathname + (query ? `?${query}` : ''));
  }

  function filtersFromUrl() {
    const params = new URLSearchParams(location.search);
    for (const [name, input] of Object.entries(fields)) {
      const values = params.getAll(name);
      if (!values.length) continue;
      if (input.tagName === 'SELECT' && ![...input.options].some((o) => o.value === values[0])) {
        input.append(el('option', { value: values[0], text: values[0] }));
      }
      input.value = values.join('; ');
    }
  }

  let typing = null;
  function refilter(delay) {
    clearTimeout(typing);
    typing = setTimeout(() => { filtersToUrl(); load(); }, delay);
  }
  for (const input of [fields.q, fields.metadata]) input.addEventListener('input', () => refilter(300));
  for (const select of [fields.status, fields.media_type, fields.language]) {
    select.addEventListener('change', () => refilter(0));
  }
  filters.addEventListener('submit', (e) => { e.preventDefault(); refilter(0); });
  filters.addEventListener('reset', () => setTimeout(() => refilter(0))); // after the form cleared
  filtersFromUrl();

  // -- the ingestion panel ----------------------------------------------------------

  const ingestion = document.getElementById('ingestion') ? {
    note: document.getElementById('ingest-note'),
    queued: document.getElementById('ingest-queued'),
    running: document.getElementById('ingest-running'),
    rate: document.getElementById('ingest-rate'),
    eta: document.getElementById('ingest-eta'),
    hour: document.getElementById('ingest-hour'),
    dead: document.getElementById('ingest-dead'),
    error: document.getElementById('ingest-error'),
  } : null;

  const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

  function duration(seconds) {
    const s = Math.max(1, Math.round(seconds));
    if (s < 60) return `${s} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${s % 60} s`;
    return `${Math.floor(m / 60)} h ${m % 60} min`;
  }

  async function loadIngestion() {
    const r = await api('GET', `kbs/${seg(kb)}/ingestion`);
    if (!r.ok) {
      show(ingestion.error, `The ingestion status could not be loaded: ${r.message}`);
      return;
    }
    show(ingestion.error, '');
    const { queue, throughput, jobs, oldest_pending: oldest } = r.data;
    const minutes = Math.round(queue.window_seconds / 60);
    setText(ingestion.queued, plural(queue.queued, 'document', 'documents'));
    setText(ingestion.running, plural(queue.running, 'document', 'documents'));
    setText(ingestion.rate, `${queue.documents_per_minute} documents/min (last ${minutes} min)`);
    let eta;
    if (queue.eta_seconds === 0) eta = 'nothing queued';
    else if (queue.eta_seconds === null) eta = 'no estimate yet: nothing finished lately';
    else eta = `about ${duration(queue.eta_seconds)}`;
    setText(ingestion.eta, eta);
    const hour = throughput.last_hour;
    setText(ingestion.hour, `${plural(hour.documents, 'document', 'documents')}, ${plural(hour.chunks, 'chunk', 'chunks')}`);
    setText(ingestion.dead, plural(jobs.dead_letter, 'document', 'documents'));
    ingestion.dead.classList.toggle('bad', jobs.dead_letter > 0);
    setText(ingestion.note, oldest
      ? `Oldest waiting: ${duration(oldest.age_seconds)} (${label(oldest.status)})`
      : `Queue limit ${queue.limit} per knowledge base`);
  }

  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(load, ms);
  }

  function render(data) {
    const parts = Object.entries(data.counts)
      .filter(([, n]) => n > 0)
      .sort(([a], [b]) => rank(a) - rank(b))
      .map(([status, n]) => `${n} ${label(status)}`);
    const total = Object.values(data.counts).reduce((a, b) => a + b, 0);
    let text = total === 1 ? '1 document' : `${total} documents`;
    if (parts.length) text += `: ${parts.join(', ')}`;
    const filtered = Object.keys(filterValues()).length > 0;
    if (filtered) text += ` · ${data.total} matching the filters`;
    if (data.total > data.documents.length) text += ` (showing the first ${data.documents.length})`;
    setText(counts, text);

    const seen = new Set();
    for (const doc of data.documents) {
      seen.add(doc.id);
      let row = rows.get(doc.id);
      if (!row) {
        row = makeRow(doc);
        rows.set(doc.id, row);
      }
      update(row, doc);
      tbody.append(row.tr); // keeps the API's order; moving a node does not rebuild it
    }
    for (const [id, row] of rows) {
      if (!seen.has(id)) { row.tr.remove(); rows.delete(id); }
    }
    table.hidden = data.documents.length === 0;
    empty.hidden = data.documents.length !== 0;
    setText(empty, filtered ? 'No documents match these filters.' : emptyText);
  }

  function makeRow(doc) {
    const row = {
      doc,
      file: el('a', { className: 'name', href: `/console/kbs/${seg(kb)}/documents/${seg(doc.id)}` }),
      revision: el('span', { className: 'hint' }),
      badge: el('span', { className: 'badge' }),
      stage: el('progress', { className: 'stage', max: String(STEPS), value: '0' }),
      reason: el('span', { className: 'reason', hidden: true }),
      language: el('td'),
      type: el('td', { className: 'type' }),
      redacted: el('td', { className: 'num redacted' }),
      chunks: el('td', { className: 'num' }),
      updated: el('td', { className: 'nowrap' }),
      buttons: {},
    };
    const actions = el('td', { className: 'actions' });
    if (can.reprocess) row.buttons.reprocess = el('button', { type: 'button', className: 'link', onclick: () => reprocess(row) });
    if (can.delete) row.buttons.delete = el('button', { type: 'button', className: 'link', text: 'Delete', onclick: () => remove(row) });
    if (can.erase) row.buttons.erase = el('button', { type: 'button', className: 'link danger', text: 'Erase', onclick: () => erase(row) });
    actions.append(...Object.values(row.buttons));
    row.tr = el('tr', { dataset: { id: doc.id } },
      el('td', { className: 'file' }, row.file, ' ', row.revision, row.reason),
      el('td', {}, row.badge, row.stage),
      row.language, row.type, row.redacted, row.chunks, row.updated,
      anyAction ? actions : null);
    return row;
  }

  function update(row, doc) {
    row.doc = doc;
    row.tr.dataset.filename = doc.filename;
    row.tr.dataset.status = doc.status || '';
    setText(row.file, doc.filename);
    setText(row.revision, doc.revision > 1 ? `revision ${doc.revision}` : '');
    const kind = doc.status === 'indexed' ? 'indexed'
      : doc.status === 'failed' ? 'failed'
        : FINAL.has(doc.status) ? '' : 'busy';
    const className = `badge ${kind}`.trim();
    if (row.badge.className !== className) row.badge.className = className;
    setText(row.badge, label(doc.status));
    // Where it is on its way: queued → parsing → … → indexed; the bar keeps its place.
    const step = Math.min(rank(doc.status), STEPS);
    const moving = !FINAL.has(doc.status) && doc.status !== 'unknown';
    row.stage.value = moving ? step : 0;
    row.stage.classList.toggle('idle', !moving);
    row.stage.setAttribute('aria-label', moving
      ? `${doc.filename}: stage ${step + 1} of ${STEPS + 1}, ${label(doc.status)}` : `${doc.filename}: ${label(doc.status)}`);
    const reason = doc.status === 'failed' ? (doc.error || 'no reason was recorded') : '';
    setText(row.reason, reason);
    row.reason.hidden = !reason;
    setText(row.language, doc.language || '—');
    setText(row.type, doc.media_type || '—');
    const red = doc.redaction;
    setText(row.redacted, red ? String(red.total) : '—');
    row.redacted.title = red && red.total
      ? Object.entries(red.by_entity).map(([type, n]) => `${type} ${n}`).join(', ')
      : (red ? 'Nothing was redacted' : 'Not redacted');
    setText(row.chunks, String(doc.chunk_count));
    setText(row.updated, when(doc.updated_at));
    const busy = !FINAL.has(doc.status) || row.acting;
    if (row.buttons.reprocess) {
      setText(row.buttons.reprocess, doc.status === 'failed' ? 'Retry' : 'Reprocess');
      row.buttons.reprocess.setAttribute('aria-label', `${doc.status === 'failed' ? 'Retry' : 'Reprocess'} ${doc.filename}`);
      row.buttons.reprocess.disabled = busy;
    }
    if (row.buttons.delete) {
      row.buttons.delete.setAttribute('aria-label', `Delete ${doc.filename}`);
      row.buttons.delete.disabled = !!row.acting;
    }
    if (row.buttons.erase) {
      row.buttons.erase.setAttribute('aria-label', `Erase ${doc.filename}`);
      row.buttons.erase.disabled = !!row.acting;
    }
  }

  document.addEventListener('visibilitychange', () => { if (!document.hidden) load(); });

  // -- actions ----------------------------------------------------------------------

  async function reprocess(row) {
    row.acting = true;
    update(row, row.doc);
    const r = await api('POST', `${base}/${seg(row.doc.id)}/reprocess`);
    row.acting = false;
    show(docError, r.ok ? '' : `${row.doc.filename}: ${r.message}`);
    load();
  }

  const dialog = document.getElementById('dialog');
  const dialogTitle = document.getElementById('dialog-title');
  const dialogBody = document.getElementById('dialog-body');
  const dialogError = document.getElementById('dialog-error');
  const confirmButton = document.getElementById('dialog-confirm');
  const cancelButton = document.getElementById('dialog-cancel');
  let onConfirm = null;

  function openDialog(title, body, confirmLabel, action) {
    setText(dialogTitle, title);
    dialogBody.replaceChildren(...body);
    show(dialogError, '');
    confirmButton.hidden = false;
    confirmButton.disabled = false;
    cancelButton.disabled = false;
    setText(confirmButton, confirmLabel);
    setText(cancelButton, 'Cancel');
    onConfirm = action;
    dialog.showModal();
    cancelButton.focus(); // a destructive action is never the default
  }

  confirmButton.addEventListener('click', async () => {
    confirmButton.disabled = true;
    cancelButton.disabled = true;
    const result = await onConfirm();
    cancelButton.disabled = false;
    load();
    if (result.error) {
      show(dialogError, result.error);
      confirmButton.disabled = false;
      return;
    }
    if (result.body) {
      setText(dialogTitle, result.title || dialogTitle.textContent);
      dialogBody.replaceChildren(...result.body);
      confirmButton.hidden = true;
      setText(cancelButton, 'Close');
      cancelButton.focus();
      return;
    }
    dialog.close();
  });
  cancelButton.addEventListener('click', () => dialog.close());

  function remove(row) {
    const { doc } = row;
    openDialog(`Delete ${doc.filename}?`, [
      el('p', { text: 'Its vectors, rows and raw bytes are removed; answers already given keep quoting it. To remove every copy (GDPR), erase it instead.' }),
    ], 'Delete', async () => {
      const r = await api('DELETE', `${base}/${seg(doc.id)}`);
      return r.ok ? {} : { error: r.message };
    });
  }

  function erase(row) {
    const { doc } = row;
    openDialog(`Erase ${doc.filename}?`, [
      el('p', { text: 'Erasing removes every copy: raw bytes of every revision, rows, vectors in every index version, cached embeddings, and answers, feedback, test cases and eval results that quote it. It cannot be undone; you get a receipt.' }),
    ], 'Erase', async () => {
      const r = await api('POST', `${base}/${seg(doc.id)}/erase`);
      if (!r.ok) return { error: r.message };
      return { title: `Erase receipt: ${doc.filename}`, body: receipt(doc.filename, r.data) };
    });
  }

  function receipt(filename, data) {
    const lines = Object.entries(data.stores).map(([store, line]) => {
      const versions = Array.isArray(line.versions) && line.versions.length
        ? el('ul', {}, ...line.versions.map((v) => el('li', {
          text: `version ${v.version} (${v.status}, ${v.backend}): ${v.removed} removed`,
        })))
        : null;
      return el('tr', { dataset: { store } },
        el('th', { scope: 'row', text: store.replace(/_/g, ' ') }),
        el('td', { className: 'num', text: String(line.count) }),
        el('td', {}, versions));
    });
    const done = data.status === 'completed';
    return [
      el('p', {
        className: done ? 'ok' : 'error',
        id: 'receipt-status',
        text: done ? `${filename} was erased from every store.`
          : `The erase of ${filename} is ${data.status}${data.error ? `: ${data.error}` : ''}.`,
      }),
      el('p', { className: 'hint' }, 'Receipt ', el('code', { text: data.id }),
        ` · ${when(data.finished_at || data.created_at)} UTC · also at GET /v1/erasures/${data.id}`),
      el('div', { className: 'table-wrap' },
        el('table', { className: 'receipt', id: 'receipt' },
          el('thead', {}, el('tr', {},
            el('th', { scope: 'col', text: 'Store' }),
            el('th', { scope: 'col', className: 'num', text: 'Removed' }),
            el('th', { scope: 'col', text: 'Index versions' }))),
          el('tbody', {}, ...lines))),
    ];
  }

  // -- uploads ----------------------------------------------------------------------

  const dropzone = document.getElementById('dropzone');
  if (dropzone) {
    const list = document.getElementById('uploads');
    const fileInput = document.getElementById('file-input');
    const folderInput = document.getElementById('folder-input');
    const queue = [];
    const AT_ONCE = 2;

    document.getElementById('choose-files').addEventListener('click', () => fileInput.click());
    document.getElementById('choose-folder').addEventListener('click', () => folderInput.click());
    for (const input of [fileInput, folderInput]) {
      input.addEventListener('change', () => {
        add([...input.files].map((file) => ({ file, name: file.webkitRelativePath || file.name })));
        input.value = '';
      });
    }
    // A file dropped beside the zone must not replace the page.
    window.addEventListener('dragover', (e) => e.preventDefault());
    window.addEventListener('drop', (e) => e.preventDefault());
    dropzone.addEventListener('dragover', (e) => {
      e.preventDefault();
      e.dataTransfer.dropEffect = 'copy';
      dropzone.classList.add('over');
    });
    dropzone.addEventListener('dragleave', () => dropzone.classList.remove('over'));
    dropzone.addEventListener('drop', async (e) => {
      e.preventDefault();
      dropzone.classList.remove('over');
      // Entries must be taken before the first await: the drop's data is gone after.
      const entries = [...e.dataTransfer.items]
        .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null))
        .filter(Boolean);
      const plain = [...e.dataTransfer.files];
      if (entries.length) {
        const found = [];
        for (const entry of entries) await visit(entry, found);
        add(found);
      } else {
        add(plain.map((file) => ({ file, name: file.name })));
      }
    });

    async function visit(entry, out) {
      if (entry.isFile) {
        const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
        out.push({ file, name: entry.fullPath.replace(/^\/+/, '') });
      } else if (entry.isDirectory) {
        const reader = entry.createReader();
        for (;;) {
          const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
          if (!batch.length) break;
          for (const child of batch) await visit(child, out);
        }
      }
    }

    function add(files) {
      for (const { file, name } of files) {
        const item = {
          file,
          name,
          badge: el('span', { className: 'badge', text: 'waiting' }),
          progress: el('progress', { max: '1', value: '0', 'aria-label': `Upload of ${name}` }),
          detail: el('span', { className: 'detail', text: size(file.size) }),
        };
        item.li = el('li', { dataset: { filename: name } },
          el('span', { className: 'name', text: name }), item.detail, item.badge, item.progress);
        list.prepend(item.li);
        queue.push(item);
      }
      pump();
    }

    function pump() {
      while (uploadsRunning < AT_ONCE && queue.length) {
        const item = queue.shift();
        uploadsRunning += 1;
        send(item).finally(() => {
          uploadsRunning -= 1;
          pump();
          load();
        });
      }
    }

    function result(item, kind, text, detail, bad) {
      item.badge.className = `badge ${kind}`;
      item.badge.textContent = text;
      item.li.dataset.result = kind;
      item.detail.textContent = detail;
      item.detail.classList.toggle('bad', !!bad);
    }

    async function send(item) {
      result(item, 'uploading', 'uploading', size(item.file.size));
      const form = new FormData();
      form.append('files', item.file, item.name);
      const r = await upload(base, form, (done) => { item.progress.value = done; });
      item.progress.value = 1;
      item.progress.classList.add('done');
      if (!r.ok) {
        result(item, 'refused', 'refused', r.message, true);
        return;
      }
      const docs = r.data.documents;
      const skipped = r.data.skipped || [];
      if (docs.length === 1 && !skipped.length && docs[0].filename === item.name) {
        const doc = docs[0];
        if (doc.status === 'not_stored') {
          result(item, 'refused', 'not stored', doc.error ? doc.error.message : 'not stored; send it again', true);
        } else if (doc.duplicate) {
          result(item, 'duplicate', 'duplicate', `Identical to revision ${doc.revision}: nothing new to index.`);
        } else {
          result(item, 'accepted', 'accepted', `Revision ${doc.revision} queued for ingestion.`);
        }
        return;
      }
      // An archive: one document per member.
      const accepted = docs.filter((d) => d.status !== 'not_stored' && !d.duplicate).length;
      const duplicates = docs.filter((d) => d.duplicate).length;
      const notStored = docs.filter((d) => d.status === 'not_stored').length;
      let text = `${docs.length} documents from the archive: ${accepted} queued, ${duplicates} duplicate(s)`;
      if (notStored) text += `, ${notStored} not stored (send the archive again)`;
      if (skipped.length) text += `; skipped: ${skipped.map((s) => `${s.filename} (${s.reason})`).join('; ')}`;
      result(item, notStored ? 'refused' : 'accepted', notStored ? 'partly stored' : 'accepted', text, notStored > 0);
    }
  }

  load();
})();
