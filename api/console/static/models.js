/* The model registry (GET /v1/models/registry): each model's kind, stage, lineage and
   source; one model's detail (where it is used, parent and children, stage history);
   for admins, a stage change limited to the moves the registry allows. */
'use strict';

(() => {
  const { api, el, setText, show, when, seg } = window.ragops;
  const root = document.getElementById('models-root');
  const canStage = root.dataset.canStage === 'true';
  const transitions = JSON.parse(root.dataset.transitions || '{}');
  const STAGE_BADGES = { production: 'indexed', staging: 'busy', archived: 'failed', candidate: '' };

  const table = document.getElementById('models-table');
  const status = document.getElementById('models-status');
  const error = document.getElementById('models-error');
  const empty = document.getElementById('models-empty');
  const kindFilter = document.getElementById('model-kind');
  const stageFilter = document.getElementById('model-stage');
  const detail = document.getElementById('model-detail');
  let current = null; // {kind, name} shown in the detail panel

  // Names may hold '/', like hub ids: each part is encoded, the slashes stay.
  const modelPath = (kind, name) => `models/registry/${seg(kind)}/${name.split('/').map(seg).join('/')}`;
  const badge = (stage) => el('span', { className: `badge ${STAGE_BADGES[stage] || ''}`.trim(), text: stage });

  async function load() {
    const query = new URLSearchParams();
    if (kindFilter.value) query.set('kind', kindFilter.value);
    if (stageFilter.value) query.set('stage', stageFilter.value);
    const r = await api('GET', `models/registry${query.toString() ? `?${query}` : ''}`);
    if (!r.ok) {
      show(error, `The registry could not be loaded: ${r.message}`);
      setText(status, '');
      return;
    }
    show(error, '');
    const models = r.data.data;
    setText(status, models.length === 1 ? '1 model' : `${models.length} models`);
    table.tBodies[0].replaceChildren(...models.map(row));
    table.hidden = models.length === 0;
    empty.hidden = models.length !== 0;
  }

  function lineageText(lineage) {
    const parts = [];
    if (lineage.fine_tuned_from) parts.push(`fine-tuned from ${lineage.fine_tuned_from}`);
    if (lineage.training_data) parts.push(`trained on ${lineage.training_data}`);
    return parts.join('; ');
  }

  function row(m) {
    const lineage = lineageText(m.lineage || {});
    return el('tr', { dataset: { kind: m.kind, name: m.name, stage: m.stage } },
      el('th', { scope: 'row', className: 'file' },
        el('button', { type: 'button', className: 'link', text: m.name, 'aria-label': `Details of ${m.kind} model ${m.name}`,
          onclick: () => open(m.kind, m.name) }),
        m.description ? el('span', { className: 'hint block', text: m.description }) : null),
      el('td', { text: m.kind }),
      el('td', {}, badge(m.stage)),
      el('td', { className: lineage ? 'lineage' : 'lineage hint', text: lineage || 'none recorded' }),
      el('td', { className: 'file' }, `${m.source_type}: `, el('span', { className: 'mono', text: m.source }),
        m.digest ? el('span', { className: 'hint block mono', text: `sha256 ${m.digest.slice(0, 12)}…` }) : null),
      el('td', { className: 'nowrap', text: when(m.stage_changed_at || m.created_at) }));
  }

  async function open(kind, name) {
    current = { kind, name };
    const r = await api('GET', modelPath(kind, name));
    detail.hidden = false;
    const err = document.getElementById('model-error');
    if (!r.ok) {
      setText(document.getElementById('model-h'), `${kind} model ${name}`);
      show(err, `This model could not be loaded: ${r.message}`);
      return;
    }
    show(err, '');
    renderDetail(r.data);
    detail.focus();
  }

  function renderDetail(m) {
    detail.dataset.kind = m.kind;
    detail.dataset.name = m.name;
    const heading = document.getElementById('model-h');
    heading.replaceChildren(`${m.name} `, badge(m.stage));
    setText(document.getElementById('model-meta'),
      `${m.kind} · ${m.source_type}: ${m.source}${m.digest ? ` · sha256 ${m.digest}` : ''}`);
    const lineage = m.lineage || {};
    const facts = [];
    const fact = (term, ...value) => facts.push(el('div', {}, el('dt', { text: term }), el('dd', {}, ...value)));
    if (m.parent) {
      fact('Fine-tuned from', el('button', { type: 'button', className: 'link', text: m.parent.name,
        onclick: () => open(m.parent.kind, m.parent.name) }), ' ', badge(m.parent.stage));
    } else {
      fact('Fine-tuned from', lineage.fine_tuned_from
        ? `${lineage.fine_tuned_from} (not registered)` : 'nothing recorded');
    }
    if (lineage.training_data) fact('Training data', lineage.training_data);
    if (lineage.notes) fact('Notes', lineage.notes);
    fact('Fine-tuned into', ...(m.children.length ? m.children.flatMap((c, i) => [
      i ? ', ' : '', el('button', { type: 'button', className: 'link', text: c.name, onclick: () => open(c.kind, c.name) }),
    ]) : ['no registered model']));
    document.getElementById('model-lineage').replaceChildren(...facts);

    const uses = [
      ...m.usage.kbs.map((u) => `knowledge base ${u.kb} (${u.role.replace(/_/g, ' ')})`),
      ...m.usage.index_versions.map((v) => `${v.kb} index version ${v.number} (${v.status})`),
      ...m.usage.server_defaults.map((s) => `server default ${s}`),
    ];
    document.getElementById('model-usage').replaceChildren(...(uses.length
      ? uses.map((u) => el('li', { text: u })) : [el('li', { className: 'empty', text: 'Nothing uses it.' })]));

    const history = m.history.map((h) => {
      const move = h.type === 'rollout'
        ? `rollout to ${h.to_stage} for ${h.kb}${h.index_version ? ` (index version ${h.index_version})` : ''}: ${h.outcome}`
        : `${h.from_stage} → ${h.to_stage}`;
      const who = h.actor ? ` by ${h.actor}` : '';
      return el('li', {}, el('span', { className: 'nowrap', text: `${when(h.created_at)} UTC` }), ' ', move, who,
        h.forced ? ' (forced)' : '', h.reason ? el('span', { className: 'hint block', text: h.reason }) : null);
    });
    document.getElementById('model-history').replaceChildren(...(history.length
      ? history : [el('li', { className: 'empty', text: 'No stage changes recorded.' })]));

    if (canStage) {
      const moves = transitions[m.stage] || [];
      const select = document.getElementById('stage-to');
      select.replaceChildren(...moves.map((s) => el('option', { value: s, text: s })));
      document.getElementById('stage-button').disabled = moves.length === 0;
      show(document.getElementById('stage-error'), '');
      show(document.getElementById('stage-ok'), '');
    }
  }

  if (canStage) {
    const form = document.getElementById('stage-form');
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      if (!current) return;
      const stage = document.getElementById('stage-to').value;
      const reason = document.getElementById('stage-reason').value;
      const button = document.getElementById('stage-button');
      button.disabled = true;
      const r = await api('POST', `${modelPath(current.kind, current.name)}/stage`, { stage, reason });
      button.disabled = false;
      if (!r.ok) { show(document.getElementById('stage-error'), r.message); return; }
      const { name } = current;
      await Promise.all([load(), open(current.kind, current.name)]);
      show(document.getElementById('stage-ok'), `${name} is now in ${stage}.`);
      document.getElementById('stage-reason').value = '';
    });
  }

  kindFilter.addEventListener('change', load);
  stageFilter.addEventListener('change', load);
  load();
})();
