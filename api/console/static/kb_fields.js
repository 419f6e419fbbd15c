/* The knowledge-base fields of the create form and the settings page
   (templates/kb_fields.html): what the user changed, as an API body, and an API
   validation message shown next to the field it is about (the field marked invalid),
   with the form's summary saying it too and leading there. */
'use strict';

window.ragopsKbFields = (() => {
  const { el, show } = window.ragops;

  function read(input) {
    const kind = input.dataset.kind;
    if (kind === 'bool') return input.checked;
    const value = input.value.trim();
    if (kind === 'int' || kind === 'number-or-null') {
      if (value === '') return null;
      const n = Number(value);
      return Number.isFinite(n) ? n : value; // the API says what is wrong with it
    }
    return value;
  }

  function changed(input) {
    if (input.type === 'checkbox') return input.checked !== input.defaultChecked;
    if (input.tagName === 'SELECT') return [...input.options].some((o) => o.selected !== o.defaultSelected);
    return input.value !== input.defaultValue;
  }

  function put(body, path, value) {
    const keys = path.split('.');
    let node = body;
    for (const key of keys.slice(0, -1)) node = node[key] || (node[key] = {});
    node[keys[keys.length - 1]] = value;
  }

  /* The fields changed from their starting values, nested as the API takes them:
     {chunking: {chunk_size: 150}, description: '...'}. */
  function changes(form) {
    const body = {};
    const lists = new Map();
    for (const input of form.querySelectorAll('[data-path]')) {
      const path = input.dataset.path;
      if (input.dataset.kind === 'list') {
        if (!lists.has(path)) lists.set(path, []);
        lists.get(path).push(input);
      } else if (changed(input)) {
        put(body, path, read(input));
      }
    }
    for (const [path, boxes] of lists) {
      if (boxes.some(changed)) put(body, path, boxes.filter((b) => b.checked).map((b) => b.value));
    }
    return body;
  }

  /* After a save: what the fields hold now is what later changes are measured from. */
  function keep(form) {
    for (const input of form.querySelectorAll('[data-path]')) {
      if (input.type === 'checkbox') input.defaultChecked = input.checked;
      else if (input.tagName === 'SELECT') for (const o of input.options) o.defaultSelected = o.selected;
      else input.defaultValue = input.value;
    }
  }

  /* Back to the starting values, for the fields under the given top-level keys. */
  function revert(form, keys) {
    for (const input of form.querySelectorAll('[data-path]')) {
      if (!keys.includes(input.dataset.path.split('.')[0])) continue;
      if (input.type === 'checkbox') input.checked = input.defaultChecked;
      else if (input.tagName === 'SELECT') for (const o of input.options) o.selected = o.defaultSelected;
      else input.value = input.defaultValue;
    }
  }

  function clearErrors(form, summary) {
    show(summary, '');
    for (const node of form.querySelectorAll('[aria-invalid]')) {
      node.removeAttribute('aria-invalid');
      node.removeAttribute('aria-errormessage');
    }
    for (const slot of form.querySelectorAll('.field-error')) show(slot, '');
  }

  /* The API's message as is: next to the field it names first (each field it names is
     marked invalid), and in the summary with a link to that field. */
  function showError(form, message, summary) {
    const hits = [];
    for (const node of form.querySelectorAll('[data-match]')) {
      const m = new RegExp(node.dataset.match, 'i').exec(message);
      if (m) hits.push([m.index, node]);
    }
    hits.sort((a, b) => a[0] - b[0]);
    if (hits.length === 0) {
      show(summary, message);
      return;
    }
    const first = hits[0][1];
    const slotId = `${first.id}-error`;
    show(document.getElementById(slotId), message);
    for (const [, node] of hits) {
      node.setAttribute('aria-invalid', 'true');
      node.setAttribute('aria-errormessage', slotId);
    }
    const closed = first.closest('details:not([open])');
    if (closed) closed.open = true;
    const target = first.matches('input, select, textarea') ? first : first.querySelector('input, select, textarea');
    summary.replaceChildren(message, ' ', el('a', { href: `#${target.id || first.id}`, text: 'Go to the field' }));
    summary.hidden = false;
    target.focus();
  }

  return { changes, keep, revert, clearErrors, showError };
})();
