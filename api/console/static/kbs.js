/* Knowledge bases: the list (GET /v1/kbs) with each KB's latest finished eval run
   (GET /v1/evals?kb=..., for keys that may read evals), and the create form (POST
   /v1/kbs, its fields shared with the settings page: kb_fields.js). */
'use strict';

(() => {
  const { api, el, show, when, seg } = window.ragops;
  const list = document.getElementById('kb-list');
  const table = document.getElementById('kb-table');
  const status = document.getElementById('kb-status');
  const empty = document.getElementById('kb-empty');
  const canDocuments = list.dataset.canDocuments === 'true';
  const canEvals = list.dataset.canEvals === 'true';
  const canSettings = list.dataset.canSettings === 'true';
  // The scores a row shows first (the rest are in the run's report).
  const FIRST_METRICS = [/^recall@/, /^mrr$/, /^ndcg@/, /^faithfulness$/, /^answer_relevancy$/];
  const SHOWN_METRICS = 3;

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
    if (canEvals) await Promise.all(kbs.map((kb) => latestEval(kb.name, body.querySelector(`tr[data-kb="${CSS.escape(kb.name)}"] td.eval`))));
  }

  function row(kb) {
    const base = `/console/kbs/${seg(kb.name)}`;
    const name = el('a', { href: canDocuments ? base : `${base}/playground`, text: kb.name });
    const links = el('td', { className: 'actions' });
    if (canDocuments) links.append(el('a', { href: base, text: 'Documents' }), ' · ');
    links.append(el('a', { href: `${base}/playground`, text: 'Playground' }));
    if (canSettings) links.append(' · ', el('a', { href: `${base}/settings`, text: 'Settings', 'aria-label': `Settings of ${kb.name}` }));
    return el('tr', { dataset: { kb: kb.name } },
      el('th', { scope: 'row' }, name, kb.description ? el('span', { className: 'hint', text: ` ${kb.description}` }) : null),
      el('td', { className: 'num', 'data-label': 'Documents', text: String(kb.document_count) }),
      // The KB's model is its live version's (promotion sets it; an indexed KB's model
      // changes only through a new version), or the one its first version will use.
      el('td', { className: 'live', 'data-label': 'Live version' },
        el('span', { className: 'number', text: kb.live_version === null ? 'none yet' : String(kb.live_version) }),
        el('span', { className: 'model mono', text: kb.embedding_model })),
      canEvals ? el('td', { className: 'eval', 'data-label': 'Latest eval' }, ...evalLines('loading…')) : null,
      el('td', { 'data-label': 'Created (UTC)', text: when(kb.created_at) }),
      links);
  }

  /* A line of scores and one about the run: a placeholder keeps both, so nothing moves
     when the scores arrive. */
  function evalLines(note) {
    return [el('span', { className: 'scores muted', text: note }), el('span', { className: 'hint', text: '\u00a0' })];
  }

  /* The newest run of the KB that finished, its first few mean scores. */
  async function latestEval(kb, cell) {
    if (!cell) return;
    const r = await api('GET', `evals?kb=${seg(kb)}&limit=20`);
    if (!r.ok) {
      cell.replaceChildren(el('span', { className: 'reason', text: r.message }));
      return;
    }
    const run = r.data.runs.find((x) => x.status === 'succeeded');
    if (!run) {
      cell.replaceChildren(...evalLines('no finished run'));
      return;
    }
    const rank = (name) => {
      const i = FIRST_METRICS.findIndex((p) => p.test(name));
      return i < 0 ? FIRST_METRICS.length : i;
    };
    const names = Object.keys(run.aggregate).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
    const scores = names.slice(0, SHOWN_METRICS).map((name) => el('span', { className: 'score', dataset: { metric: name } },
      `${name} `, el('strong', { text: run.aggregate[name].mean.toFixed(2) })));
    const version = run.key.index_version === null || run.key.index_version === undefined ? '' : `version ${run.key.index_version} · `;
    cell.replaceChildren(
      el('span', { className: 'scores' }, ...scores),
      el('span', { className: 'hint' }, `${version}${when(run.finished_at)} · `,
        el('a', { href: `/console/kbs/${seg(kb)}/quality/runs/${seg(run.id)}`, text: 'report', 'aria-label': `Report of the latest eval run of ${kb}` })));
  }

  const form = document.getElementById('create-kb');
  if (form) {
    const { changes, clearErrors, showError } = window.ragopsKbFields;
    const error = document.getElementById('create-error');
    const ok = document.getElementById('create-ok');
    const button = form.querySelector('button[type="submit"]');
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(form, error);
      show(ok, '');
      // Only what the user changed: the server's defaults apply to the rest.
      const body = { name: form.elements.name.value.trim(), ...changes(form) };
      button.disabled = true;
      const r = await api('POST', 'kbs', body);
      button.disabled = false;
      if (!r.ok) {
        showError(form, r.message, error);
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
