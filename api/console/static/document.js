/* One document: GET /v1/kbs/{kb}/documents/{doc_id} (its metadata, revisions with their
   stage reports, the current revision's redaction report: counts only) kept live while
   it is on its way, and GET .../chunks (its chunks as indexed, text after redaction),
   a page at a time. */
'use strict';

(() => {
  const { api, el, setText, show, when, size, seg } = window.ragops;
  const root = document.getElementById('doc-root');
  const kb = root.dataset.kb;
  const path = `kbs/${seg(kb)}/documents/${seg(root.dataset.doc)}`;
  const canChunks = root.dataset.canChunks === 'true';
  const CHUNK_PAGE = 50;

  // The stages a revision moves through, in order; the revision's status is one of them.
  const STAGES = ['pending', 'parsing', 'cleaning', 'redacting', 'chunking', 'embedding',
    'indexing', 'indexed'];
  const FINAL = new Set(['indexed', 'failed', 'superseded', 'unknown']);
  const LABELS = { pending: 'queued', unknown: 'no revision' };
  const label = (status) => LABELS[status] || status;
  // Stage report keys in pipeline order; any other stage follows in the report's order.
  const REPORT_ORDER = ['parse', 'clean', 'boilerplate', 'redact', 'chunk', 'dedupe',
    'near_dedupe', 'embed', 'index'];

  const errorLine = document.getElementById('doc-error');
  const badge = document.getElementById('doc-badge');
  const stages = document.getElementById('doc-stages');
  const reason = document.getElementById('doc-reason');
  const facts = document.getElementById('doc-facts');
  const revisions = document.getElementById('revisions');
  let timer = null;
  let shownStatus = null;
  const openRevisions = new Set();

  const stageItems = STAGES.map((status) => el('li', { dataset: { stage: status }, text: label(status) }));
  stages.append(...stageItems);

  async function load() {
    clearTimeout(timer);
    const r = await api('GET', path);
    if (!r.ok) {
      show(errorLine, r.status === 404
        ? 'This document no longer exists: it was deleted or erased.'
        : `The document could not be loaded: ${r.message}`);
      if (r.status !== 404) timer = setTimeout(load, 10000);
      return;
    }
    show(errorLine, '');
    render(r.data);
    if (canChunks && r.data.status !== shownStatus && (shownStatus === null || r.data.status === 'indexed')) {
      chunks.reload();
    }
    shownStatus = r.data.status;
    timer = setTimeout(load, FINAL.has(r.data.status) ? 15000 : 1000);
  }

  function render(doc) {
    root.dataset.status = doc.status;
    setText(document.getElementById('doc-title'), doc.filename);
    const kind = doc.status === 'indexed' ? 'indexed' : doc.status === 'failed' ? 'failed'
      : FINAL.has(doc.status) ? '' : 'busy';
    badge.className = `badge ${kind}`.trim();
    setText(badge, label(doc.status));
    // Stages before the current one are done; a failed or superseded revision left the way.
    const at = STAGES.indexOf(doc.status);
    stageItems.forEach((li, i) => {
      const state = at < 0 ? 'off' : i < at ? 'done' : i === at ? 'current' : 'todo';
      if (li.dataset.state !== state) li.dataset.state = state;
      if (state === 'current') li.setAttribute('aria-current', 'step');
      else li.removeAttribute('aria-current');
    });
    const why = doc.status === 'failed' ? (doc.error || 'no reason was recorded') : '';
    show(reason, why && `Failed: ${why}`);

    const current = doc.revisions.find((r) => r.number === doc.revision);
    const metadata = Object.entries(doc.metadata || {});
    facts.replaceChildren(
      fact('Language', doc.language || '—'),
      fact('Type', doc.media_type || '—'),
      fact('Revision', doc.revision ? `${doc.revision} of ${doc.revisions.length}` : '—'),
      fact('Chunks', String(doc.chunk_count)),
      fact('Size', current ? size(current.size_bytes) : '—'),
      fact('Updated (UTC)', when(doc.updated_at)),
      fact('Indexed (UTC)', current && current.indexed_at ? when(current.indexed_at) : '—'),
      fact('Document id', el('code', { text: doc.id })),
      fact('Metadata', metadata.length
        ? el('ul', { className: 'meta-list' }, ...metadata.map(([k, v]) => el('li', {},
          el('span', { className: 'k', text: `${k}: ` }), typeof v === 'string' ? v : JSON.stringify(v))))
        : 'none'),
    );
    renderRedaction(doc.redaction, current);
    renderRevisions(doc);
  }

  function fact(name, value) {
    return el('div', {}, el('dt', { text: name }), el('dd', {}, value));
  }

  // -- redaction report -------------------------------------------------------------

  function renderRedaction(report, current) {
    const meta = document.getElementById('redaction-meta');
    const table = document.getElementById('redaction-table');
    if (!report) {
      setText(meta, current && !FINAL.has(current.status)
        ? 'Not redacted yet: the revision is on its way.'
        : 'No redaction report: redaction is off for this knowledge base, or this revision never reached it.');
      table.hidden = true;
      return;
    }
    const languages = Object.keys(report.by_language).sort();
    if (!report.total) {
      setText(meta, 'Nothing to redact was found.');
      table.hidden = true;
      return;
    }
    setText(meta, `${report.total} ${report.total === 1 ? 'span' : 'spans'} replaced in revision ${current ? current.number : ''}.`);
    document.getElementById('redaction-head').replaceChildren(
      el('th', { scope: 'col', text: 'Entity type' }),
      ...languages.map((lang) => el('th', { scope: 'col', className: 'num', text: lang })),
      el('th', { scope: 'col', className: 'num', text: 'Total' }),
    );
    table.tBodies[0].replaceChildren(...Object.entries(report.by_entity).map(([type, n]) => el('tr',
      { dataset: { entity: type } },
      el('th', { scope: 'row', text: type }),
      ...languages.map((lang) => el('td', { className: 'num', text: String(report.by_language[lang][type] || 0) })),
      el('td', { className: 'num', text: String(n) }))));
    table.hidden = false;
  }

  // -- revisions and their stage reports -------------------------------------------

  function renderRevisions(doc) {
    const newest = [...doc.revisions].sort((a, b) => b.number - a.number);
    if (!openRevisions.size && newest.length) openRevisions.add(newest[0].id);
    revisions.replaceChildren(...newest.map((rev) => {
      const details = el('details', { className: 'revision', dataset: { revision: String(rev.number), status: rev.status } },
        el('summary', {},
          el('strong', { text: `Revision ${rev.number}` }),
          ' ', el('span', { className: `badge ${rev.status === 'indexed' ? 'indexed' : rev.status === 'failed' ? 'failed' : FINAL.has(rev.status) ? '' : 'busy'}`.trim(), text: label(rev.status) }),
          el('span', { className: 'hint', text: ` uploaded ${when(rev.created_at)} UTC · ${size(rev.size_bytes)} · ${rev.media_type} · ${rev.chunk_count} ${rev.chunk_count === 1 ? 'chunk' : 'chunks'}` })),
        rev.error ? el('p', { className: 'error', text: rev.error }) : null,
        el('p', { className: 'hint' }, 'sha256 ', el('code', { className: 'sha', text: rev.content_sha256 }),
          rev.indexed_at ? ` · indexed ${when(rev.indexed_at)} UTC` : ''),
        stageTable(rev));
      details.open = openRevisions.has(rev.id);
      details.addEventListener('toggle', () => {
        if (details.open) openRevisions.add(rev.id); else openRevisions.delete(rev.id);
      });
      return details;
    }));
  }

  function stageTable(rev) {
    const counts = (rev.report && rev.report.counts) || {};
    const seconds = (rev.report && rev.report.seconds) || {};
    const names = [...new Set([...Object.keys(seconds), ...Object.keys(counts)])]
      .filter((name) => name !== 'redact_by_language') // the redaction report shows it
      .sort((a, b) => order(a) - order(b));
    if (!names.length) {
      return el('p', { className: 'empty', text: FINAL.has(rev.status) ? 'No stage report was recorded.' : 'The stage report comes when the revision is indexed.' });
    }
    const rows = names.map((name) => el('tr', { dataset: { stage: name } },
      el('th', { scope: 'row', text: name.replace(/_/g, ' ') }),
      el('td', { className: 'num', text: name in seconds ? seconds[name].toFixed(3) : '—' }),
      el('td', { className: 'counts-cell', text: Object.entries(counts[name] || {}).map(([k, n]) => `${k} ${n}`).join(' · ') || '—' })));
    return el('div', { className: 'table-wrap' }, el('table', { className: 'stage-report' },
      el('thead', {}, el('tr', {},
        el('th', { scope: 'col', text: 'Stage' }),
        el('th', { scope: 'col', className: 'num', text: 'Seconds' }),
        el('th', { scope: 'col', text: 'Counts' }))),
      el('tbody', {}, ...rows)));
  }

  function order(name) {
    const i = REPORT_ORDER.indexOf(name);
    return i < 0 ? REPORT_ORDER.length : i;
  }

  // -- chunks -----------------------------------------------------------------------

  const chunks = canChunks ? (() => {
    const list = document.getElementById('chunks');
    const meta = document.getElementById('chunks-meta');
    const emptyLine = document.getElementById('chunks-empty');
    const more = document.getElementById('chunks-more');
    let offset = 0;
    let total = 0;

    async function page(reset) {
      more.disabled = true;
      const start = reset ? 0 : offset;
      const r = await api('GET', `${path}/chunks?limit=${CHUNK_PAGE}&offset=${start}`);
      more.disabled = false;
      if (!r.ok) {
        setText(meta, `The chunks could not be loaded: ${r.message}`);
        return;
      }
      const data = r.data;
      total = data.total;
      offset = start + data.chunks.length;
      const items = data.chunks.map((c) => {
        const where = [
          c.metadata.page_number ? `page ${c.metadata.page_number}` : '',
          c.metadata.section ? `section “${c.metadata.section}”` : '',
          c.metadata.language || '',
        ].filter(Boolean).join(' · ');
        return el('li', { dataset: { position: String(c.position) } },
          el('p', { className: 'chunk-head' },
            el('strong', { text: `#${c.position + 1}` }),
            el('span', { className: 'hint', text: ` ${c.token_count} tokens${where ? ` · ${where}` : ''}` })),
          el('p', { className: 'chunk-text', text: c.text }));
      });
      if (reset) list.replaceChildren(...items); else list.append(...items);
      if (data.revision === null) {
        setText(meta, '');
        show(emptyLine, 'No revision of this document is indexed yet: its chunks show here once one is.');
      } else {
        setText(meta, `${total} ${total === 1 ? 'chunk' : 'chunks'} of revision ${data.revision}, `
          + `as index version ${data.index_version} holds them (text after cleaning and redaction).`);
        show(emptyLine, total ? '' : 'This revision has no chunks in that version.');
      }
      more.hidden = offset >= total;
    }

    more.addEventListener('click', () => page(false));
    return { reload: () => page(true) };
  })() : null;

  document.addEventListener('visibilitychange', () => { if (!document.hidden) load(); });
  load();
})();
