/* A knowledge base's quality: its eval runs with their mean scores (kept live while a
   run is queued or running), the comparison of two runs (per-metric deltas and the
   per-question differences from GET /v1/evals/{id}/results), starting a run, the test
   sets, schedules and A/B tests with their per-arm figures. On one run's page: the
   embedded report's frame grows to the report's height. */
'use strict';

(() => {
  const { api, el, setText, show, when, seg } = window.ragops;

  // Metrics in the order the reports use; `recall@3` sorts as `recall@k`.
  const METRIC_ORDER = ['recall@k', 'mrr', 'ndcg@k', 'context_precision', 'context_recall',
    'string_similarity', 'bleu', 'rouge', 'semantic_similarity', 'faithfulness',
    'answer_relevancy', 'llm_context_precision', 'llm_context_recall'];
  const metricRank = (name) => {
    const i = METRIC_ORDER.indexOf(name.replace(/@\d+$/, '@k'));
    return i < 0 ? METRIC_ORDER.length : i;
  };
  const byMetric = (a, b) => metricRank(a) - metricRank(b) || a.localeCompare(b);
  const fmt = (v) => (typeof v === 'number' ? v.toFixed(3) : '—');
  const fmtDelta = (d) => {
    if (typeof d !== 'number') return '—';
    if (Math.abs(d) < 5e-7) return '0.000';
    return (d > 0 ? '+' : '−') + Math.abs(d).toFixed(3);
  };
  const deltaClass = (d) => (typeof d !== 'number' || Math.abs(d) < 5e-7 ? 'num' : d > 0 ? 'num better' : 'num worse');
  const BADGES = { succeeded: 'indexed', failed: 'failed', queued: 'busy', running: 'busy' };

  const runRoot = document.getElementById('run-root');
  if (runRoot) { fitReport(); return; }
  const root = document.getElementById('quality-root');
  if (!root) return;
  const kb = root.dataset.kb;
  const can = {
    versions: root.dataset.canVersions === 'true',
    runSchedule: root.dataset.canRunSchedule === 'true',
    stopAb: root.dataset.canStopAb === 'true',
  };
  const runPage = (id, compare) => `/console/kbs/${seg(kb)}/quality/runs/${seg(id)}${compare ? `?compare=${seg(compare)}` : ''}`;

  // -- eval runs --------------------------------------------------------------------

  const runsTable = document.getElementById('runs-table');
  const runsBody = runsTable.tBodies[0];
  const runsStatus = document.getElementById('runs-status');
  const runsError = document.getElementById('runs-error');
  const runsEmpty = document.getElementById('runs-empty');
  const versionFilter = document.getElementById('run-version');
  const modelFilter = document.getElementById('run-model');
  let runs = [];
  let runsShown = '';
  let runsTimer = null;

  async function loadRuns() {
    clearTimeout(runsTimer);
    const r = await api('GET', `evals?kb=${seg(kb)}&limit=200`);
    if (!r.ok) {
      show(runsError, `The eval runs could not be loaded: ${r.message}`);
      setText(runsStatus, '');
      runsTimer = setTimeout(loadRuns, 15000);
      return;
    }
    show(runsError, '');
    runs = r.data.runs;
    renderFilters();
    renderRuns();
    renderCompareChoices();
    const busy = runs.some((x) => x.status === 'queued' || x.status === 'running');
    if (busy) runsTimer = setTimeout(loadRuns, 1500);
  }

  function renderFilters() {
    const versions = [...new Set(runs.map((x) => x.key.index_version))].sort((a, b) => b - a);
    fillSelect(versionFilter, [['', 'all'], ...versions.map((v) => [String(v), `version ${v}`])]);
    const embedders = [...new Set(runs.map((x) => x.key.embedding_model))].sort();
    const generators = [...new Set(runs.map((x) => x.key.generator))].sort();
    fillSelect(modelFilter, [['', 'all'],
      ...embedders.map((m) => [`embedding:${m}`, `embedding: ${m}`]),
      ...generators.map((g) => [`generator:${g}`, `generator: ${g}`])]);
  }

  /* Replaces a select's options only when they changed (keeps the choice and focus). */
  function fillSelect(select, options) {
    const wanted = JSON.stringify(options);
    if (select.dataset.options === wanted) return;
    const value = select.value;
    select.replaceChildren(...options.map(([v, label]) => el('option', { value: v, text: label })));
    select.dataset.options = wanted;
    if (options.some(([v]) => v === value)) select.value = value;
  }

  function shownRuns() {
    const version = versionFilter.value;
    const model = modelFilter.value;
    return runs.filter((x) => {
      if (version && String(x.key.index_version) !== version) return false;
      if (model.startsWith('embedding:') && x.key.embedding_model !== model.slice(10)) return false;
      if (model.startsWith('generator:') && x.key.generator !== model.slice(10)) return false;
      return true;
    });
  }

  function renderRuns() {
    const list = shownRuns();
    const text = runs.length === 0 ? ''
      : list.length === runs.length ? `${runs.length} run${runs.length === 1 ? '' : 's'}, newest first`
        : `${list.length} of ${runs.length} runs`;
    setText(runsStatus, text);
    const signature = JSON.stringify(list);
    if (signature !== runsShown) {
      runsShown = signature;
      runsBody.replaceChildren(...list.map(runRow));
    }
    runsTable.hidden = list.length === 0;
    runsEmpty.hidden = list.length !== 0;
    if (runs.length && !list.length) setText(runsEmpty, 'No runs match these filters.');
  }

  function runRow(run) {
    const k = run.key;
    const params = Object.entries(k.params || {}).map(([name, v]) => `${name} ${v}`).join(', ');
    const done = run.status === 'succeeded';
    const progress = run.status === 'queued' || run.status === 'running'
      ? ` ${run.completed_count}/${run.question_count}` : '';
    // Each cell's content is one element: at phone width a cell is "label | content".
    const cell = (label, className, ...children) => el('td', { className, dataset: { label } }, el('div', {}, ...children));
    return el('tr', { dataset: { run: run.id, status: run.status } },
      cell('Run (UTC)', 'nowrap',
        done ? el('a', { href: runPage(run.id), text: when(run.created_at) }) : when(run.created_at),
        el('span', { className: 'hint block mono', text: run.id.slice(0, 12) })),
      cell('Status', null,
        el('span', { className: `badge ${BADGES[run.status] || ''}`.trim(), text: run.status + progress }),
        run.error ? el('span', { className: 'reason', text: run.error }) : null),
      cell('Test set', null, `${k.testset}@${k.testset_version}`),
      cell('Index version', null, `version ${k.index_version}`, el('span', { className: 'hint block', text: k.embedding_model })),
      cell('Generator', null, `${k.generator} · ${k.prompt}`, el('span', { className: 'hint block', text: params })),
      cell('Scores', null, scoreList(run.aggregate)));
  }

  function scoreList(aggregate) {
    const names = Object.keys(aggregate || {}).sort(byMetric);
    if (!names.length) return el('span', { className: 'hint', text: 'no scores yet' });
    return el('dl', { className: 'scores' }, ...names.map((name) => el('div', { dataset: { metric: name } },
      el('dt', { text: name }), el('dd', { text: fmt(aggregate[name].mean) }))));
  }

  versionFilter.addEventListener('change', renderRuns);
  modelFilter.addEventListener('change', renderRuns);

  // -- compare two runs -------------------------------------------------------------

  const compareForm = document.getElementById('compare');
  const pickA = document.getElementById('compare-a');
  const pickB = document.getElementById('compare-b');
  const compareError = document.getElementById('compare-error');
  const compareButton = document.getElementById('compare-button');
  const compareResult = document.getElementById('compare-result');
  const compareMeta = document.getElementById('compare-meta');
  const metricsBody = document.getElementById('compare-metrics').tBodies[0];
  const questionsTable = document.getElementById('compare-questions');
  const questionMetric = document.getElementById('compare-metric');
  const compareSame = document.getElementById('compare-same');
  const compareReport = document.getElementById('compare-report');
  let compared = null;

  const runLabel = (x) => `${when(x.created_at)} · v${x.key.index_version} · ${x.key.generator}`
    + ` · top ${x.key.params && x.key.params.top_k} · ${x.key.testset}@${x.key.testset_version} · ${x.id.slice(0, 8)}`;

  function renderCompareChoices() {
    const done = runs.filter((x) => x.status === 'succeeded');
    const options = done.map((x) => [x.id, runLabel(x)]);
    const first = !pickA.dataset.options;
    fillSelect(pickA, options);
    fillSelect(pickB, options);
    if (first && done.length >= 2) {
      // A: the newest run; B: the newest earlier run of the same test set version.
      const a = done[0];
      const b = done.slice(1).find((x) => sameTestset(a, x)) || done[1];
      pickA.value = a.id;
      pickB.value = b.id;
    }
    compareButton.disabled = done.length < 2;
    if (done.length < 2) show(compareError, '');
    setText(document.getElementById('compare-hint'), done.length < 2
      ? 'Two succeeded runs are needed to compare.'
      : 'Succeeded runs of the same test set version compare question by question; Δ is A − B.');
  }

  const sameTestset = (a, b) => a.key.testset === b.key.testset && a.key.testset_version === b.key.testset_version;

  compareForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const a = runs.find((x) => x.id === pickA.value);
    const b = runs.find((x) => x.id === pickB.value);
    if (!a || !b) { show(compareError, 'Choose two runs.'); return; }
    if (a.id === b.id) { show(compareError, 'Choose two different runs: A and B are the same run.'); return; }
    if (!sameTestset(a, b)) {
      show(compareError, `Run A scored test set ${a.key.testset}@${a.key.testset_version} but run B scored `
        + `${b.key.testset}@${b.key.testset_version}; compare runs of the same test set version.`);
      return;
    }
    show(compareError, '');
    compareButton.disabled = true;
    compareResult.setAttribute('aria-busy', 'true');
    const [ra, rb] = await Promise.all([
      api('GET', `evals/${seg(a.id)}/results`), api('GET', `evals/${seg(b.id)}/results`)]);
    compareButton.disabled = false;
    compareResult.setAttribute('aria-busy', 'false');
    if (!ra.ok || !rb.ok) {
      show(compareError, `The results could not be loaded: ${(ra.ok ? rb : ra).message}`);
      return;
    }
    compared = { a, b, resultsA: ra.data.results, resultsB: rb.data.results };
    renderComparison();
  });

  function renderComparison() {
    const { a, b, resultsA, resultsB } = compared;
    setText(compareMeta, `A: ${runLabel(a)}. B: ${runLabel(b)}.`);
    const names = [...new Set([...Object.keys(a.aggregate), ...Object.keys(b.aggregate)])].sort(byMetric);
    metricsBody.replaceChildren(...names.map((name) => {
      const va = a.aggregate[name] ? a.aggregate[name].mean : null;
      const vb = b.aggregate[name] ? b.aggregate[name].mean : null;
      const d = va !== null && vb !== null ? va - vb : null;
      return el('tr', { dataset: { metric: name } },
        el('th', { scope: 'row', text: name }),
        el('td', { className: 'num', text: fmt(va) }),
        el('td', { className: 'num', text: fmt(vb) }),
        el('td', { className: deltaClass(d), text: fmtDelta(d) }));
    }));
    const numeric = (rows) => new Set(rows.flatMap((r) => Object.entries(r.scores)
      .filter(([, v]) => typeof v === 'number').map(([k]) => k)));
    const inA = numeric(resultsA);
    const common = [...numeric(resultsB)].filter((m) => inA.has(m)).sort(byMetric);
    fillSelect(questionMetric, common.map((m) => [m, m]));
    renderQuestions();
    compareReport.href = runPage(a.id, b.id);
    compareResult.hidden = false;
  }

  function renderQuestions() {
    const metric = questionMetric.value;
    const { resultsA, resultsB } = compared;
    const byPosition = new Map(resultsB.map((r) => [r.position, r]));
    const rows = [];
    for (const ra of resultsA) {
      const rb = byPosition.get(ra.position);
      if (!rb || !metric) continue;
      const va = ra.scores[metric];
      const vb = rb.scores[metric];
      const d = typeof va === 'number' && typeof vb === 'number' ? va - vb : null;
      if (d !== null && Math.abs(d) < 5e-7) continue;
      rows.push({ position: ra.position, question: ra.question, va, vb, d });
    }
    rows.sort((x, y) => (x.d ?? 0) - (y.d ?? 0) || x.position - y.position);
    questionsTable.tBodies[0].replaceChildren(...rows.map((r) => el('tr', { dataset: { position: r.position } },
      el('td', { className: 'num', text: String(r.position) }),
      el('td', { className: 'question', text: r.question }),
      el('td', { className: 'num', text: fmt(r.va) }),
      el('td', { className: 'num', text: fmt(r.vb) }),
      el('td', { className: deltaClass(r.d), text: fmtDelta(r.d) }))));
    questionsTable.hidden = rows.length === 0;
    compareSame.hidden = rows.length !== 0;
  }

  questionMetric.addEventListener('change', () => { if (compared) renderQuestions(); });

  // -- start a run ------------------------------------------------------------------

  const startForm = document.getElementById('start-eval');
  const startTestset = document.getElementById('start-testset');
  const startVersion = document.getElementById('start-version');

  async function loadVersions() {
    if (!startForm || !can.versions) return;
    const r = await api('GET', `kbs/${seg(kb)}/versions`);
    if (!r.ok) return; // the field keeps "live"; the API says what is wrong on submit
    const usable = r.data.versions.filter((v) => v.status === 'live' || v.status === 'ready');
    fillSelect(startVersion, [['', r.data.live_version ? `live (version ${r.data.live_version})` : 'live'],
      ...usable.map((v) => [String(v.number), `version ${v.number} (${v.status}) · ${v.embedding_model}`])]);
  }

  if (startForm) {
    const startError = document.getElementById('start-error');
    const startOk = document.getElementById('start-ok');
    const startButton = document.getElementById('start-button');
    startForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      show(startOk, '');
      const [testset, version] = (startTestset.value || '').split(/@(?=\d+$)/);
      if (!testset) { show(startError, 'Choose a test set (upload one first if there is none).'); startTestset.focus(); return; }
      const body = { kb, testset, testset_version: Number(version) };
      const form = new FormData(startForm);
      if (form.get('index_version')) body.index_version = Number(form.get('index_version'));
      if (form.get('generator')) body.generator = form.get('generator');
      if (form.get('top_k')) body.top_k = Number(form.get('top_k'));
      if (form.get('mode')) body.mode = form.get('mode');
      startButton.disabled = true;
      const r = await api('POST', 'evals', body);
      startButton.disabled = false;
      if (!r.ok) { show(startError, r.message); return; }
      show(startError, '');
      show(startOk, `Run ${r.data.id} is queued on index version ${r.data.key.index_version}; its scores show above when it ends.`);
      loadRuns();
    });
  }

  // -- test sets --------------------------------------------------------------------

  async function loadTestsets() {
    const table = document.getElementById('testsets-table');
    const r = await api('GET', 'testsets');
    if (!r.ok) { show(document.getElementById('testsets-error'), `The test sets could not be loaded: ${r.message}`); return; }
    const sets = r.data.testsets.slice().sort((x, y) => x.name.localeCompare(y.name) || y.version - x.version);
    table.tBodies[0].replaceChildren(...sets.map((t) => el('tr', { dataset: { testset: `${t.name}@${t.version}` } },
      el('th', { scope: 'row', text: t.name }),
      el('td', { className: 'num', text: String(t.version) }),
      el('td', { className: 'num', text: String(t.case_count) }),
      el('td', { text: t.source }),
      el('td', { className: 'nowrap', text: when(t.created_at) }),
      el('td', { text: t.description || '' }))));
    table.hidden = sets.length === 0;
    document.getElementById('testsets-empty').hidden = sets.length !== 0;
    if (startTestset) {
      // Newest version of each name first.
      fillSelect(startTestset, sets.map((t) => [`${t.name}@${t.version}`, `${t.name}@${t.version} (${t.case_count} cases)`]));
      document.getElementById('start-button').disabled = sets.length === 0;
      if (!sets.length) show(document.getElementById('start-error'), 'There is no test set to run yet: upload one first (see Test sets below).');
    }
  }

  // -- schedules --------------------------------------------------------------------

  async function loadSchedules() {
    const table = document.getElementById('schedules-table');
    const error = document.getElementById('schedules-error');
    const r = await api('GET', 'schedules');
    if (!r.ok) { show(error, `The schedules could not be loaded: ${r.message}`); return; }
    const mine = r.data.schedules.filter((s) => s.kb === kb || s.kb === null);
    table.tBodies[0].replaceChildren(...mine.map((s) => {
      const whenText = s.kind === 'on_ready' ? 'each newly built version'
        : `nightly on the live version${s.cron ? ` (cron ${s.cron}, UTC)` : ''}`;
      const actions = can.runSchedule ? el('td', { className: 'actions' }, el('button', {
        type: 'button', className: 'link', text: 'Run now', 'aria-label': `Run schedule ${s.name} now`,
        onclick: (e) => runSchedule(s.name, e.currentTarget),
      })) : null;
      return el('tr', { dataset: { schedule: s.name } },
        el('th', { scope: 'row' }, s.name, s.kb === null ? el('span', { className: 'hint', text: 'every KB' }) : null),
        el('td', { text: whenText }),
        el('td', { text: `${s.testset}${s.testset_version ? `@${s.testset_version}` : ' (newest)'}` }),
        el('td', { text: s.enabled ? 'yes' : 'no' }),
        el('td', { className: 'nowrap', text: when(s.last_run_at) || 'never' }),
        el('td', { className: 'nowrap', text: when(s.next_run_time) || '—' }),
        actions);
    }));
    table.hidden = mine.length === 0;
    document.getElementById('schedules-empty').hidden = mine.length !== 0;
  }

  async function runSchedule(name, button) {
    const msg = document.getElementById('schedules-msg');
    const error = document.getElementById('schedules-error');
    button.disabled = true;
    const r = await api('POST', `schedules/${seg(name)}/run`);
    button.disabled = false;
    if (!r.ok) { show(msg, ''); show(error, `${name}: ${r.message}`); return; }
    show(error, '');
    const n = r.data.eval_run_ids.length;
    show(msg, `${name} queued ${n} eval run${n === 1 ? '' : 's'}.`);
    loadSchedules();
    loadRuns();
  }

  // -- A/B tests --------------------------------------------------------------------

  async function loadAbTests() {
    const list = document.getElementById('ab-list');
    const error = document.getElementById('ab-error');
    const r = await api('GET', `kbs/${seg(kb)}/ab-tests`);
    if (!r.ok) { show(error, `The A/B tests could not be loaded: ${r.message}`); return; }
    const reports = await Promise.all(r.data.tests.map((t) => api('GET', `kbs/${seg(kb)}/ab-tests/${seg(t.name)}`)));
    const failed = reports.find((x) => !x.ok);
    show(error, failed ? `An A/B test could not be loaded: ${failed.message}` : '');
    list.replaceChildren(...reports.filter((x) => x.ok).map((x) => abCard(x.data)));
    document.getElementById('ab-empty').hidden = r.data.tests.length !== 0;
  }

  function abCard(test) {
    const id = `ab-${test.id}`;
    const stop = can.stopAb && test.status === 'running'
      ? el('button', { type: 'button', className: 'secondary small', text: 'Stop', 'aria-label': `Stop A/B test ${test.name}`,
        onclick: (e) => stopAb(test.name, e.currentTarget) }) : null;
    const pct = (v) => (typeof v === 'number' ? `${(100 * v).toFixed(0)}%` : '—');
    const rows = test.arms.map((arm) => {
      const evalCell = arm.eval
        ? el('td', {}, el('span', { className: 'hint block', text: `${arm.eval.testset}@${arm.eval.testset_version}` }),
          scoreList(Object.fromEntries(Object.entries(arm.eval.scores).map(([k, v]) => [k, { mean: v }]))))
        : el('td', { className: 'hint', text: 'no eval run yet' });
      const ci = arm.positive_rate_ci95 ? ` (95%: ${pct(arm.positive_rate_ci95[0])}–${pct(arm.positive_rate_ci95[1])})` : '';
      return el('tr', { dataset: { arm: arm.name } },
        el('th', { scope: 'row', text: arm.name }),
        el('td', { className: 'num', text: pct(arm.share) }),
        el('td', {}, `version ${arm.index_version}`, el('span', { className: 'hint block', text: `${arm.generator} · ${arm.prompt}` })),
        el('td', { className: 'num', text: String(arm.answers) }),
        el('td', { className: 'num nowrap', text: `${arm.thumbs_up} up, ${arm.thumbs_down} down` }),
        el('td', { className: 'num', text: pct(arm.positive_rate) + ci }),
        el('td', { className: 'num', text: typeof arm.mean_latency_ms === 'number' ? `${arm.mean_latency_ms.toFixed(0)} ms` : '—' }),
        evalCell);
    });
    return el('article', { className: 'card ab', dataset: { test: test.name }, 'aria-labelledby': id },
      el('div', { className: 'section-head' },
        el('h3', { id, text: test.name }),
        el('div', { className: 'buttons' },
          el('span', { className: `badge ${test.status === 'running' ? 'busy' : ''}`.trim(), text: test.status }), stop)),
      el('p', { className: 'meta', text: `Started ${when(test.created_at)} UTC${test.created_by ? ` by ${test.created_by}` : ''}`
        + `${test.stopped_at ? `, stopped ${when(test.stopped_at)} UTC` : ''}.` }),
      el('div', { className: 'table-wrap' }, el('table', {},
        el('thead', {}, el('tr', {}, ...['Arm', 'Share', 'Configuration', 'Answers', 'Feedback', 'Positive rate', 'Mean latency', 'Eval scores']
          .map((h, i) => el('th', { scope: 'col', className: i && i < 7 && i !== 2 ? 'num' : null, text: h })))),
        el('tbody', {}, ...rows))));
  }

  async function stopAb(name, button) {
    button.disabled = true;
    const r = await api('POST', `kbs/${seg(kb)}/ab-tests/${seg(name)}/stop`);
    if (!r.ok) { button.disabled = false; show(document.getElementById('ab-error'), `${name}: ${r.message}`); return; }
    loadAbTests();
  }

  document.addEventListener('visibilitychange', () => { if (!document.hidden) loadRuns(); });
  loadRuns();
  loadVersions();
  loadTestsets();
  loadSchedules();
  loadAbTests();

  // -- one run's page ---------------------------------------------------------------

  /* The report is same-origin and script-free (sandbox="allow-same-origin"): the frame
     takes the report's height, so the page scrolls once, not twice. */
  function fitReport() {
    const frame = document.getElementById('report-frame');
    if (!frame) return;
    const fit = () => {
      const doc = frame.contentDocument;
      if (!doc || !doc.documentElement || doc.URL === 'about:blank') return;
      // The html element's own box: the content's height, whatever the frame's height.
      const height = `${Math.ceil(doc.documentElement.getBoundingClientRect().height)}px`;
      if (frame.style.height !== height) frame.style.height = height;
    };
    frame.addEventListener('load', () => {
      fit();
      const doc = frame.contentDocument;
      if (doc) doc.addEventListener('toggle', fit, true);
    });
    window.addEventListener('resize', fit);
    if (frame.contentDocument && frame.contentDocument.readyState === 'complete') fit();
  }
})();
