/* The playground: a question against the KB (live or a pinned index version: the
   choice lists GET /v1/kbs/{kb}/versions for keys that may read it), the retrieved
   passages with scores (POST /v1/kbs/{kb}/retrieve) beside the answer with its
   citations (POST /v1/kbs/{kb}/answer, streamed as server-sent events when asked) from
   the chosen generator and prompt template (GET /v1/prompts), and feedback on the
   answer (POST /v1/answers/{id}/feedback). */
'use strict';

(() => {
  const { api, el, show, seg } = window.ragops;
  const kb = document.getElementById('kb-root').dataset.kb;
  const form = document.getElementById('ask');
  const askButton = document.getElementById('ask-button');
  const askError = document.getElementById('ask-error');
  const answerNode = document.getElementById('answer');
  const answerMeta = document.getElementById('answer-meta');
  const citations = document.getElementById('citations');
  const citationsHeading = document.getElementById('citations-h');
  const passages = document.getElementById('passages');
  const passagesMeta = document.getElementById('passages-meta');
  const passagesError = document.getElementById('passages-error');
  const passagesEmpty = document.getElementById('passages-empty');
  const feedback = document.getElementById('feedback');
  const feedbackError = document.getElementById('feedback-error');
  const feedbackOk = document.getElementById('feedback-ok');
  const ratingButtons = [...feedback.querySelectorAll('button.rating')];
  const canVersions = document.getElementById('kb-root').dataset.canVersions === 'true';
  let answerId = null;
  let rating = null;

  // -- the choices ------------------------------------------------------------------

  /* Each saved prompt: its newest version, and each version pinned (name@version). */
  async function loadPrompts() {
    const r = await api('GET', 'prompts');
    if (!r.ok) {
      show(askError, `The prompt templates could not be listed: ${r.message}`);
      return;
    }
    const select = form.elements.prompt;
    for (const p of r.data.data) {
      const group = el('optgroup', { label: p.name },
        el('option', { value: p.name, text: `${p.name} (newest, version ${p.latest_version})` }));
      // Versions are numbered 1, 2, ... with none removed: all of them are listed.
      if (p.versions === p.latest_version) {
        for (let v = p.latest_version; v >= 1; v -= 1) group.append(el('option', { value: `${p.name}@${v}`, text: `${p.name}@${v}` }));
      }
      select.append(group);
    }
  }

  /* The versions a question can be pinned to (ready or live); the others, disabled. */
  async function loadVersions() {
    const r = await api('GET', `kbs/${seg(kb)}/versions`);
    if (!r.ok) {
      show(askError, `The index versions could not be listed: ${r.message}`);
      return;
    }
    const select = form.elements.index_version;
    for (const v of r.data.versions) {
      if (v.status === 'retired') continue;
      const usable = v.status === 'ready' || v.status === 'live';
      const building = v.status === 'building' ? `building ${Math.round(v.progress * 100)}%` : v.status;
      const state = v.error ? 'build failed' : building;
      select.append(el('option', { value: String(v.number), disabled: !usable, text: `version ${v.number} · ${state} · ${v.embedding_model}` }));
    }
  }

  function numberOrNothing(input) {
    const value = input.value.trim();
    if (value === '') return undefined;
    const n = Number(value);
    return Number.isFinite(n) ? n : value; // the API says what is wrong with it
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    show(askError, '');
    const query = form.elements.query.value.trim();
    if (!query) {
      show(askError, 'Type a question first.');
      form.elements.query.setAttribute('aria-invalid', 'true');
      form.elements.query.focus();
      return;
    }
    form.elements.query.removeAttribute('aria-invalid');
    const common = { query, top_k: numberOrNothing(form.elements.top_k) };
    const version = numberOrNothing(form.elements.index_version);
    if (version !== undefined) common.index_version = version;
    askButton.disabled = true;
    await Promise.all([
      retrieve(common),
      answer({ ...common, generator: form.elements.generator.value, ...prompt(), stream: form.elements.stream.checked }),
    ]);
    askButton.disabled = false;
  });

  function prompt() {
    const value = form.elements.prompt.value;
    return value ? { prompt: value } : {};
  }

  // -- passages ---------------------------------------------------------------------

  async function retrieve(body) {
    show(passagesError, '');
    passagesMeta.textContent = 'Retrieving…';
    const r = await api('POST', `kbs/${seg(kb)}/retrieve`, body);
    if (!r.ok) {
      passagesMeta.textContent = '';
      show(passagesError, r.message);
      passages.replaceChildren();
      passagesEmpty.hidden = true;
      return;
    }
    const hits = r.data.results;
    const version = r.data.index_version === null ? 'no index version yet' : `index version ${r.data.index_version}`;
    passagesMeta.textContent = `${hits.length} passage${hits.length === 1 ? '' : 's'} · ${version}${r.data.mode ? ` · ${r.data.mode}` : ''}`;
    passages.replaceChildren(...hits.map((hit) => el('li', { dataset: { chunk: hit.chunk_id } },
      el('div', { className: 'passage-head' },
        el('span', {}, el('strong', { text: hit.filename }), where(hit.metadata)),
        el('span', { className: 'score', text: `score ${hit.score.toFixed(3)}` })),
      el('p', { className: 'passage-text', text: hit.text }))));
    passagesEmpty.hidden = hits.length !== 0;
    passagesEmpty.textContent = 'Nothing relevant was found for this question.';
  }

  function where(meta) {
    const parts = [];
    if (meta && meta.page_number !== undefined && meta.page_number !== null) parts.push(`page ${meta.page_number}`);
    if (meta && meta.section) parts.push(meta.section);
    return parts.length ? ` · ${parts.join(' · ')}` : '';
  }

  // -- the answer -------------------------------------------------------------------

  function resetAnswer() {
    answerId = null;
    answerNode.replaceChildren();
    answerMeta.textContent = '';
    citations.replaceChildren();
    citationsHeading.hidden = true;
    feedback.hidden = true;
  }

  async function answer(body) {
    resetAnswer();
    answerNode.setAttribute('aria-busy', 'true');
    answerMeta.textContent = 'Answering…';
    try {
      if (!body.stream) {
        const r = await api('POST', `kbs/${seg(kb)}/answer`, body);
        if (!r.ok) return failed(r.message);
        return done(r.data);
      }
      const r = await api('POST', `kbs/${seg(kb)}/answer`, body, { raw: true });
      if (!r.ok) return failed(r.message);
      await readEvents(r.response);
    } finally {
      answerNode.setAttribute('aria-busy', 'false');
    }
  }

  function failed(message) {
    answerMeta.textContent = '';
    answerNode.replaceChildren();
    show(askError, message);
  }

  /* Server-sent events from a POST (EventSource only does GET): `token` pieces, then
     `done` with the whole answer, or `error`. */
  async function readEvents(response) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const streamed = document.createTextNode('');
    answerNode.replaceChildren(streamed);
    let buffer = '';
    let finished = false;
    for (;;) {
      const { value, done: end } = await reader.read();
      if (end) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let event = 'message';
        const data = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        const payload = data.length ? JSON.parse(data.join('\n')) : null;
        if (event === 'token') {
          streamed.appendData(payload.text);
        } else if (event === 'done') {
          finished = true;
          done(payload);
        } else if (event === 'error') {
          finished = true;
          failed(payload.error.message);
        }
      }
    }
    if (!finished) failed('The answer stream ended early; ask again.');
  }

  function done(data) {
    answerId = data.id;
    const parts = [];
    let last = 0;
    const marker = /\[(\d+)\]/g;
    let m;
    const cited = new Set(data.citations.map((c) => c.index));
    while ((m = marker.exec(data.answer)) !== null) {
      parts.push(data.answer.slice(last, m.index));
      const n = Number(m[1]);
      parts.push(cited.has(n)
        ? el('a', { className: 'cite', href: `#cite-${n}`, text: m[0], 'aria-label': `source ${n}` })
        : m[0]);
      last = m.index + m[0].length;
    }
    parts.push(data.answer.slice(last));
    answerNode.replaceChildren(...parts);
    const prompt = data.prompt ? ` · prompt ${data.prompt.name}@${data.prompt.version}` : '';
    const version = data.index_version === null ? 'no index version' : `index version ${data.index_version}`;
    answerMeta.textContent = `${data.generator}${prompt} · ${version}`;
    citations.replaceChildren(...data.citations.map((c) => el('li', { id: `cite-${c.index}`, value: String(c.index) },
      el('strong', { text: c.filename }),
      c.page_number !== null && c.page_number !== undefined ? ` · page ${c.page_number}` : '',
      c.section ? ` · ${c.section}` : '',
      el('span', { className: 'hint', text: ` · score ${c.score.toFixed(3)}` }))));
    citationsHeading.hidden = data.citations.length === 0;
    resetFeedback();
    feedback.hidden = false;
  }

  // -- feedback ---------------------------------------------------------------------

  function resetFeedback() {
    rating = null;
    for (const b of ratingButtons) b.setAttribute('aria-pressed', 'false');
    feedback.elements.correction.value = '';
    feedback.elements.comment.value = '';
    show(feedbackError, '');
    show(feedbackOk, '');
  }

  for (const button of ratingButtons) {
    button.addEventListener('click', () => {
      rating = Number(button.dataset.rating);
      for (const b of ratingButtons) b.setAttribute('aria-pressed', String(b === button));
    });
  }

  feedback.addEventListener('submit', async (event) => {
    event.preventDefault();
    show(feedbackError, '');
    show(feedbackOk, '');
    if (rating === null) {
      show(feedbackError, 'Choose “Helpful” or “Not helpful” first.');
      ratingButtons[0].focus();
      return;
    }
    const body = { rating };
    const correction = feedback.elements.correction.value.trim();
    const comment = feedback.elements.comment.value.trim();
    if (correction) body.correction = correction;
    if (comment) body.comment = comment;
    const r = await api('POST', `answers/${seg(answerId)}/feedback`, body);
    if (!r.ok) {
      show(feedbackError, r.message);
      return;
    }
    show(feedbackOk, 'Thank you: your feedback is saved with this answer.');
  });

  loadPrompts();
  if (canVersions) loadVersions();
})();
