/* A knowledge base's index versions: the list kept live by polling
   GET /v1/kbs/{kb}/versions (status, build progress, differences from live), the build
   form (POST .../versions), promotion through the quality gate (POST .../promote; while
   the gate's eval runs are queued, GET /v1/decisions/{id} until it decides), rollback
   (POST .../rollback) and the decision trail (GET .../decisions). */
'use strict';

(() => {
  const { api, el, setText, show, when, seg } = window.ragops;
  const root = document.getElementById('versions-root');
  const kb = root.dataset.kb;
  const actor = root.dataset.actor;
  const hasGate = root.dataset.hasGate === 'true';
  const can = {
    promote: root.dataset.canPromote === 'true',
    decisions: root.dataset.canDecisions === 'true',
    decision: root.dataset.canDecision === 'true',
  };
  const base = `kbs/${seg(kb)}`;
  const UNDECIDED = new Set(['pending', 'deciding']);
  const BADGES = {
    live: 'ok', ready: '', building: 'busy', retired: 'muted',
    promoted: 'ok', overridden: 'warn', refused: 'bad', failed: 'bad', pending: 'busy', deciding: 'busy',
  };

  const table = document.getElementById('version-table');
  const tbody = table.tBodies[0];
  const statusLine = document.getElementById('version-status');
  const versionError = document.getElementById('version-error');
  const empty = document.getElementById('version-empty');
  const versionNote = document.getElementById('version-note');
  const buildOk = document.getElementById('build-ok');
  const buildError = document.getElementById('build-error');
  let built = null; // the version this page asked to build, until its build ends
  const rollbackButton = document.getElementById('rollback');
  const rows = new Map();
  let versions = [];
  let liveNumber = null;
  let decisions = [];
  let timer = null;
  let loading = false;
  let reloadAfter = false;
  let promoting = false; // a promotion request or a watched pending decision

  // -- formatting ---------------------------------------------------------------------

  function fmt(value) {
    if (value === null || value === undefined) return 'none';
    if (typeof value === 'boolean') return value ? 'on' : 'off';
    if (Array.isArray(value)) return value.length ? value.join(', ') : 'none';
    if (typeof value === 'object') {
      const parts = Object.entries(value).map(([k, v]) => `${k} ${fmt(v)}`);
      return parts.length ? parts.join(', ') : 'none';
    }
    return String(value);
  }

  function score(value) {
    return typeof value === 'number' ? value.toFixed(4) : '—';
  }

  function badge(node, kind, text) {
    const className = `badge ${BADGES[kind] || ''} ${kind}`.replace(/\s+/g, ' ').trim();
    if (node.className !== className) node.className = className;
    setText(node, text);
  }

  /* Everything that makes two versions differ, as [label, value] pairs. */
  function settingsOf(v) {
    const config = v.config || {};
    const params = v.index_params || {};
    const out = [
      ['model', v.embedding_model],
      ['chunk size', (config.chunking || {}).chunk_size],
      ['chunk overlap', (config.chunking || {}).chunk_overlap],
    ];
    for (const [key, value] of Object.entries(config.cleaning || {})) {
      out.push([`cleaning: ${key.replace(/_/g, ' ')}`, value]);
    }
    for (const [key, value] of Object.entries(config.redaction || {})) {
      out.push([`redaction: ${key.replace(/_/g, ' ')}`, value]);
    }
    out.push(['backend', v.backend], ['engine', v.engine], ['index type', params.index_type]);
    for (const [key, value] of Object.entries(params)) {
      if (key !== 'index_type' && key !== 'engine') out.push([`index ${key}`, value]);
    }
    return out;
  }

  /* [label, live value, this value] for each setting that differs from live. */
  function differences(v, live) {
    const mine = new Map(settingsOf(v).map(([k, value]) => [k, fmt(value)]));
    const theirs = new Map(settingsOf(live).map(([k, value]) => [k, fmt(value)]));
    const keys = [...new Set([...theirs.keys(), ...mine.keys()])];
    return keys
      .filter((k) => (mine.get(k) ?? 'none') !== (theirs.get(k) ?? 'none'))
      .map((k) => [k, theirs.get(k) ?? 'none', mine.get(k) ?? 'none']);
  }

  // -- the version list ---------------------------------------------------------------

  async function load() {
    if (loading) { reloadAfter = true; return; }
    clearTimeout(timer);
    if (document.hidden) { schedule(2000); return; }
    loading = true;
    const [r, d] = await Promise.all([
      api('GET', `${base}/versions`),
      can.decisions ? api('GET', `${base}/decisions?limit=50`) : Promise.resolve(null),
    ]);
    loading = false;
    if (reloadAfter) { reloadAfter = false; load(); return; }
    if (!r.ok) {
      show(versionError, `The versions could not be loaded: ${r.message}`);
      schedule(10000);
      return;
    }
    show(versionError, '');
    versions = r.data.versions;
    liveNumber = r.data.live_version;
    render();
    if (d) renderDecisions(d);
    const busy = versions.some((v) => v.status === 'building' && !v.error)
      || decisions.some((x) => UNDECIDED.has(x.outcome)) || promoting;
    schedule(busy ? 1000 : 10000);
  }

  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(load, ms);
  }

  function render() {
    const live = versions.find((v) => v.number === liveNumber) || null;
    const building = versions.filter((v) => v.status === 'building' && !v.error);
    let text = versions.length === 1 ? '1 version' : `${versions.length} versions`;
    text += live ? ` · live: version ${live.number}` : ' · none is live';
    if (building.length) {
      text += ` · building: ${building.map((v) => `version ${v.number} (${Math.round(v.progress * 100)}%)`).join(', ')}`;
    }
    setText(statusLine, text);

    const seen = new Set();
    // Newest first: a new build appears at the top, where the form's message points.
    for (const v of [...versions].sort((a, b) => b.number - a.number)) {
      seen.add(v.number);
      let row = rows.get(v.number);
      if (!row) {
        row = makeRow(v);
        rows.set(v.number, row);
      }
      update(row, v, live);
      tbody.append(row.tr);
    }
    for (const [number, row] of rows) {
      if (!seen.has(number)) { row.tr.remove(); rows.delete(number); }
    }
    table.hidden = versions.length === 0;
    empty.hidden = versions.length !== 0;
    const mine = built === null ? null : versions.find((v) => v.number === built);
    if (mine && (mine.status !== 'building' || mine.error)) {
      built = null;
      show(buildOk, mine.error ? '' : `Version ${mine.number} is ${mine.status}: promote it from the list above.`);
      if (mine.error) show(buildError, `Version ${mine.number} failed to build: ${mine.error}`);
    }
    if (rollbackButton) {
      const target = rollbackTarget();
      rollbackButton.disabled = !target || promoting;
      rollbackButton.title = target ? `Make version ${target.number} live again` : 'No earlier live version to roll back to';
    }
  }

  /* What POST .../rollback re-points live at: the ready version promoted most recently. */
  function rollbackTarget() {
    return versions
      .filter((v) => v.status === 'ready' && v.promoted_at)
      .sort((a, b) => String(b.promoted_at).localeCompare(String(a.promoted_at)))[0] || null;
  }

  function makeRow(v) {
    const row = {
      number: el('th', { scope: 'row', className: 'num', 'data-label': 'Version' }),
      badge: el('span', { className: 'badge' }),
      progress: el('progress', { className: 'build-progress', max: '1', value: '0', 'aria-label': `Build of version ${v.number}` }),
      reason: el('span', { className: 'reason', hidden: true }),
      engine: el('td', { className: 'nowrap', 'data-label': 'Engine' }),
      model: el('td', { className: 'model mono', 'data-label': 'Model' }),
      chunking: el('td', { className: 'nowrap', 'data-label': 'Chunking' }),
      vectors: el('td', { className: 'num', 'data-label': 'Vectors' }),
      created: el('td', { className: 'nowrap', 'data-label': 'Created (UTC)' }),
      diff: el('td', { className: 'diff-cell', 'data-label': 'Differences from live' }),
    };
    const actions = el('td', { className: 'actions' });
    if (can.promote) {
      row.promote = el('button', {
        type: 'button', className: 'small', text: 'Promote',
        'aria-label': `Promote version ${v.number}`,
        onclick: () => confirmPromote(row.version.number),
      });
      actions.append(row.promote);
    }
    row.tr = el('tr', {},
      row.number,
      el('td', { className: 'status-cell', 'data-label': 'Status' }, row.badge, row.progress, row.reason),
      row.engine, row.model, row.chunking, row.vectors, row.created, row.diff,
      can.promote ? actions : null);
    return row;
  }

  function update(row, v, live) {
    row.version = v;
    row.tr.dataset.number = String(v.number);
    row.tr.dataset.status = v.status;
    setText(row.number, String(v.number));
    const buildingText = `building ${Math.round(v.progress * 100)}%`;
    badge(row.badge, v.error && v.status === 'building' ? 'failed' : v.status,
      v.status === 'building' ? (v.error ? 'build failed' : buildingText) : v.status);
    row.progress.value = v.progress;
    row.progress.classList.toggle('idle', v.status !== 'building' || !!v.error);
    setText(row.reason, v.error || '');
    row.reason.hidden = !v.error;
    const params = v.index_params || {};
    setText(row.engine, params.index_type ? `${v.engine} · ${params.index_type}` : v.engine);
    setText(row.model, v.embedding_model);
    const chunking = (v.config || {}).chunking || {};
    setText(row.chunking, `${fmt(chunking.chunk_size)} tokens, ${fmt(chunking.chunk_overlap)} overlap`);
    setText(row.vectors, v.vector_count.toLocaleString('en'));
    setText(row.created, when(v.created_at));
    renderDiff(row, v, live);
    if (row.promote) {
      // Kept in place (visibility, not display) so rows do not jump when a build ends.
      const promotable = v.status === 'ready';
      row.promote.classList.toggle('invisible', !promotable);
      row.promote.disabled = !promotable || promoting;
      row.promote.tabIndex = promotable ? 0 : -1;
    }
  }

  function renderDiff(row, v, live) {
    let key;
    let nodes;
    if (!live) {
      key = 'no-live';
      nodes = [el('span', { className: 'hint', text: 'no live version to compare with' })];
    } else if (v.number === live.number) {
      key = 'live';
      nodes = [el('span', { className: 'hint', text: 'this is the live version' })];
    } else {
      const diffs = differences(v, live);
      key = JSON.stringify([live.number, diffs]);
      nodes = diffs.length
        ? [el('ul', { className: 'diff' }, ...diffs.map(([name, was, now]) => el('li', { dataset: { setting: name } },
          el('span', { className: 'k', text: `${name}: ` }), `${was} → `, el('strong', { text: now }))))]
        : [el('span', { className: 'same', text: 'same settings as live' })];
    }
    if (row.diffKey !== key) {
      row.diffKey = key;
      row.diff.replaceChildren(...nodes);
    }
  }

  document.addEventListener('visibilitychange', () => { if (!document.hidden) load(); });

  // -- the confirmation dialog ----------------------------------------------------------

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
    confirmButton.disabled = false;
    cancelButton.disabled = false;
    setText(confirmButton, confirmLabel);
    onConfirm = action;
    dialog.showModal();
    cancelButton.focus(); // changing what answers is never the default
  }

  confirmButton.addEventListener('click', async () => {
    confirmButton.disabled = true;
    cancelButton.disabled = true;
    const result = await onConfirm();
    cancelButton.disabled = false;
    if (result.error) {
      show(dialogError, result.error);
      confirmButton.disabled = false;
      return;
    }
    dialog.close();
  });
  cancelButton.addEventListener('click', () => dialog.close());

  // -- rollback -----------------------------------------------------------------------

  if (rollbackButton) {
    rollbackButton.addEventListener('click', () => {
      const target = rollbackTarget();
      if (!target) return;
      openDialog(`Roll back to version ${target.number}?`, [
        el('p', { text: `Version ${target.number} answers again at once, without the quality gate` +
          (liveNumber ? `; version ${liveNumber} stops serving and stays ready, so you can promote it again.` : '.') }),
      ], 'Roll back', async () => {
        const r = await api('POST', `${base}/rollback`);
        if (!r.ok) return { error: r.message };
        show(versionNote, `Rolled back: version ${r.data.number} is live again.`);
        await load();
        return {};
      });
    });
  }

  // -- promotion through the gate -------------------------------------------------------

  const panel = document.getElementById('promotion');
  const panelHeading = document.getElementById('promotion-h');
  const panelStatus = document.getElementById('promotion-status');
  const checks = document.getElementById('checks');
  const evidenceLine = document.getElementById('promotion-evidence');
  const override = document.getElementById('override');
  let shown = null; // the decision in the panel

  function confirmPromote(number) {
    const what = hasGate
      ? `The quality gate runs its test set on version ${number}${liveNumber ? ` and compares it with live version ${liveNumber}` : ''}; it goes live only if every check passes. Eval runs may take a minute.`
      : `There is no quality gate: version ${number} goes live at once${liveNumber ? `, and version ${liveNumber} stays ready for a rollback` : ''}.`;
    openDialog(`Promote version ${number}?`, [el('p', { text: what })], 'Promote', async () => {
      const r = await promote(number, { actor });
      return r.ok || r.decision ? {} : { error: r.message };
    });
  }

  /* POST .../promote; shows the decision it answers with (200 decided, 202 pending, 409
     refused with the evidence), then follows a pending one. */
  async function promote(number, body) {
    promoting = true;
    show(versionNote, '');
    if (buildOk) show(buildOk, '');
    render();
    const r = await api('POST', `${base}/versions/${number}/promote`, body);
    let decision = null;
    if (r.ok) decision = r.data.decision;
    else if (r.data && r.data.error && r.data.error.code === 'quality_gate_failed') decision = r.data.error.details;
    promoting = false;
    if (decision) {
      showDecision(decision);
      if (UNDECIDED.has(decision.outcome)) follow(decision.id);
    } else if (r.ok) {
      // Already live: nothing was decided.
      showMessage(number, 'ok', `Version ${number} is already live.`);
    }
    await load();
    return { ok: r.ok, decision, message: r.message };
  }

  async function follow(id) {
    promoting = true;
    for (;;) {
      await new Promise((resolve) => { setTimeout(resolve, 1000); });
      if (!can.decision) {
        await load();
        const found = decisions.find((x) => x.id === id);
        if (found && !UNDECIDED.has(found.outcome)) { showDecision(found); break; }
        continue;
      }
      const r = await api('GET', `decisions/${seg(id)}`);
      if (!r.ok) {
        showMessage(shown ? shown.index_version : null, 'bad', `The decision could not be read: ${r.message}`);
        break;
      }
      if (shown && shown.id === id) showDecision(r.data);
      if (!UNDECIDED.has(r.data.outcome)) break;
    }
    promoting = false;
    await load();
  }

  function showMessage(number, kind, text) {
    panel.hidden = false;
    panel.dataset.outcome = kind;
    setText(panelHeading, number ? `Promotion of version ${number}` : 'Promotion');
    panelStatus.className = kind === 'ok' ? 'ok' : 'error';
    setText(panelStatus, text);
    checks.hidden = true;
    setText(evidenceLine, '');
    if (override) override.hidden = true;
  }

  function outcomeText(d) {
    const ev = d.evidence || {};
    const n = d.index_version;
    switch (d.outcome) {
      case 'pending':
      case 'deciding': {
        const waiting = ev.waiting_for || [];
        return waiting.length
          ? `The gate is waiting for ${waiting.join(' and ')}; version ${n} goes live by itself if it passes.`
          : `The gate is deciding on version ${n}…`;
      }
      case 'promoted':
        return `Version ${n} is live: ${ev.summary || ev.note || 'promoted'}.`;
      case 'overridden':
        return `Version ${n} is live: the quality gate was overridden by ${d.actor || 'an unnamed caller'} (${d.reason}).`;
      case 'refused':
        return `The quality gate refused version ${n}: ${ev.summary || 'see the checks'}. It stays ready; live is unchanged.`;
      default:
        return `The promotion of version ${n} failed: ${ev.note || 'see the decision'}.`;
    }
  }

  function showDecision(d) {
    shown = d;
    panel.hidden = false;
    panel.dataset.outcome = d.outcome;
    panel.dataset.decision = d.id;
    setText(panelHeading, `Promotion of version ${d.index_version}`);
    const kind = BADGES[d.outcome] || '';
    const className = kind === 'ok' ? 'ok' : kind === 'bad' ? 'error' : 'notice';
    if (panelStatus.className !== className) panelStatus.className = className;
    setText(panelStatus, outcomeText(d));
    const ev = d.evidence || {};
    const list = ev.checks || [];
    checks.tBodies[0].replaceChildren(...list.map((c) => el('tr', { dataset: { metric: c.metric, passed: String(c.passed) } },
      el('th', { scope: 'row', text: c.metric }),
      el('td', { text: c.rule }),
      el('td', { className: 'num', text: score(c.value) }),
      el('td', { className: 'num', text: score(c.baseline) }),
      el('td', { className: 'num', text: typeof c.delta === 'number' ? (c.delta >= 0 ? '+' : '') + c.delta.toFixed(4) : '—' }),
      el('td', { className: c.passed ? 'pass' : 'fail', text: c.passed ? 'passed' : `failed${c.note ? ` (${c.note})` : ''}` }))));
    checks.hidden = list.length === 0;
    const parts = [`Decision ${d.id}`];
    if (d.eval_run_id) parts.push(`candidate eval run ${d.eval_run_id}`);
    if (d.baseline_run_id) parts.push(`live version ${d.baseline_version} eval run ${d.baseline_run_id}`);
    setText(evidenceLine, parts.join(' · '));
    if (override) {
      const offer = d.outcome === 'refused';
      if (offer && override.hidden) {
        override.dataset.number = String(d.index_version);
        show(document.getElementById('override-error'), '');
      }
      override.hidden = !offer;
    }
  }

  if (override) {
    const reason = document.getElementById('override-reason');
    const overrideError = document.getElementById('override-error');
    const overrideButton = document.getElementById('override-button');
    override.addEventListener('submit', async (event) => {
      event.preventDefault();
      show(overrideError, '');
      reason.removeAttribute('aria-invalid');
      overrideButton.disabled = true;
      const r = await promote(Number(override.dataset.number), { force: true, actor, reason: reason.value.trim() });
      overrideButton.disabled = false;
      if (!r.ok && !r.decision) {
        show(overrideError, r.message);
        if (/reason|actor/i.test(r.message)) {
          reason.setAttribute('aria-invalid', 'true');
          reason.setAttribute('aria-errormessage', 'override-error');
          reason.focus();
        }
        return;
      }
      reason.value = '';
    });
  }

  // -- decisions ----------------------------------------------------------------------

  const decisionTable = document.getElementById('decision-table');
  const decisionRows = new Map();

  function renderDecisions(r) {
    const decisionError = document.getElementById('decision-error');
    if (!r.ok) {
      show(decisionError, `The decisions could not be loaded: ${r.message}`);
      return;
    }
    show(decisionError, '');
    decisions = r.data.decisions;
    const body = decisionTable.tBodies[0];
    const seen = new Set();
    for (const d of decisions) {
      seen.add(d.id);
      const key = JSON.stringify([d.outcome, d.evidence, d.passed]);
      let row = decisionRows.get(d.id);
      if (!row || row.key !== key) {
        const tr = decisionRow(d);
        if (row) row.tr.replaceWith(tr);
        row = { tr, key };
        decisionRows.set(d.id, row);
      }
      body.append(row.tr);
    }
    for (const [id, row] of decisionRows) {
      if (!seen.has(id)) { row.tr.remove(); decisionRows.delete(id); }
    }
    decisionTable.hidden = decisions.length === 0;
    document.getElementById('decision-empty').hidden = decisions.length !== 0;
    // A promotion still deciding (asked from another tab, or before a reload) is shown.
    const open = decisions.find((x) => UNDECIDED.has(x.outcome));
    if (open && !shown && !promoting && panel) {
      showDecision(open);
      follow(open.id);
    }
  }

  function decisionRow(d) {
    const ev = d.evidence || {};
    const status = el('span');
    badge(status, d.outcome, d.outcome);
    const who = el('td', { 'data-label': 'Who' }, d.actor || el('span', { className: 'hint', text: 'not named' }));
    if (d.forced) who.append(' ', el('span', { className: 'chip', text: 'override' }));
    const evidence = el('td', { className: 'evidence', 'data-label': 'Evidence' });
    const summary = UNDECIDED.has(d.outcome)
      ? `waiting for ${(ev.waiting_for || ['the eval runs']).join(' and ')}`
      : (ev.summary || ev.note || '');
    if (summary) evidence.append(el('span', { text: summary }));
    if (d.reason) evidence.append(el('span', { className: 'reason-text', text: `Reason: ${d.reason}` }));
    if ((ev.checks || []).length) {
      evidence.append(el('details', {},
        el('summary', { text: `${ev.checks.length} checks` }),
        el('ul', { className: 'diff' }, ...ev.checks.map((c) => el('li', {
          text: `${c.passed ? 'passed' : 'FAILED'}: ${c.metric} ${score(c.value)} (${c.rule}${typeof c.baseline === 'number' ? `, live ${score(c.baseline)}` : ''})`,
        })))));
    }
    const version = el('td', { 'data-label': 'Version' }, d.subject);
    if (d.baseline_version) version.append(el('span', { className: 'hint', text: ` vs live v${d.baseline_version}` }));
    return el('tr', { dataset: { id: d.id, outcome: d.outcome, version: String(d.index_version) } },
      el('td', { className: 'nowrap', 'data-label': 'When (UTC)', text: when(d.created_at) }),
      version,
      el('td', { 'data-label': 'Outcome' }, status),
      who,
      evidence);
  }

  // -- building -----------------------------------------------------------------------

  const form = document.getElementById('build');
  if (form) {
    const error = buildError;
    const ok = buildOk;
    const button = document.getElementById('build-button');
    const backend = form.elements.backend;
    const indexType = form.elements.index_type;
    const engineHint = document.getElementById('build-engine');
    // Which input an API message is about (the messages name the field).
    const FIELDS = [
      [/chunk_overlap/i, 'chunk_overlap'],
      [/chunk_size|chunking/i, 'chunk_size'],
      [/embedding.model|model/i, 'embedding_model'],
      [/index_params|index_type/i, 'index_type'],
      [/backend/i, 'backend'],
    ];

    function syncBackend() {
      const qdrant = backend.value === 'qdrant';
      // Qdrant versions take no index params: the engine builds its own HNSW.
      indexType.disabled = qdrant;
      setText(engineHint, `Engine: ${qdrant ? engineHint.dataset.qdrantEngine : 'faiss'}.`);
    }
    backend.addEventListener('change', syncBackend);
    syncBackend();

    function number(name) {
      const raw = form.elements[name].value.trim();
      return raw === '' ? undefined : Number(raw);
    }

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      show(error, '');
      show(ok, '');
      show(versionNote, '');
      for (const input of form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
      const body = { backend: backend.value };
      const model = form.elements.embedding_model.value.trim();
      if (model) body.embedding_model = model;
      const chunking = {};
      const size = number('chunk_size');
      const overlap = number('chunk_overlap');
      if (size !== undefined) chunking.chunk_size = size;
      if (overlap !== undefined) chunking.chunk_overlap = overlap;
      if (Object.keys(chunking).length) body.chunking = chunking;
      if (backend.value === 'faiss') body.index_params = { index_type: indexType.value };
      button.disabled = true;
      const r = await api('POST', `${base}/versions`, body);
      button.disabled = false;
      if (!r.ok) {
        // The API's own message, shown as is; the field it is about is marked invalid.
        show(error, r.message);
        const field = FIELDS.find(([pattern]) => pattern.test(r.message));
        const input = field ? form.elements[field[1]] : null;
        if (input) {
          input.setAttribute('aria-invalid', 'true');
          input.setAttribute('aria-errormessage', 'build-error');
          input.focus();
        }
        return;
      }
      form.reset();
      syncBackend();
      built = r.data.number;
      show(ok, `Version ${r.data.number} is building from the current documents; its progress shows in the list above.`);
      await load();
    });
  }

  load();
})();
