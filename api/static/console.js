/* nube console: plain JavaScript, no build step, no dependency, no inline code (the page's CSP
   allows this file only). It calls the public REST API and nothing else, with the bearer token
   kept in sessionStorage (this tab only, gone when it closes) and sent as an Authorization
   header with credentials: 'omit' (no cookie is read or sent). Everything shown is written with
   textContent, never parsed as HTML. See docs/console.md. */
(() => {
  'use strict';

  const TOKEN_KEY = 'nube.console.token';
  const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
  // A browser opens at most 6 HTTP/1.1 connections to one host: an events stream holds one for
  // as long as its job runs, so at most this many are open; other jobs are long-polled.
  const MAX_STREAMS = 2;
  const JOB_POLL_MS = 2000;
  const AUDIT_EVERY_POLLS = 5;
  const READ_WAIT = 10; // seconds of each long-poll on a read's job
  const JOB_ROWS = 30;
  const AUDIT_ROWS = 100;
  // The VM actions offered as buttons, in the state table's order (workers/drivers/vm_states.py);
  // the snapshot actions need a snapshot name and stay in the API.
  const VM_ACTIONS = [
    'start', 'shutdown', 'destroy', 'reboot', 'suspend', 'resume', 'save', 'restore',
    'autostart', 'undefine',
  ];
  const CONTAINER_ACTIONS = ['start', 'stop', 'remove'];
  const SECTIONS = ['vms', 'containers', 'images', 'networks', 'volumes', 'audit'];

  const state = {
    token: null,
    session: null, // AbortController of everything the signed-in session runs
    ops: new Map(), // operation name -> {method, path, summary} (GET /v1/services)
    jobs: new Map(), // job id -> latest body
    watchers: new Map(), // job id -> Promise of the finished job
    streams: 0,
    pollTimer: null,
    polls: 0,
    primed: false, // the first jobs poll is in: a job seen later is new
    tenant: null,
    admin: null, // null until the audit log answers
    vms: new Map(), // name -> representation
    vmBusy: new Map(), // name -> action in flight
    vmErrors: new Map(), // name -> last action's error
    auditRecords: [],
    auditAfter: null,
    loading: new Map(), // section -> {promise, again}
  };

  // --- small helpers -------------------------------------------------------------------------

  const $ = (selector) => document.querySelector(selector);

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = String(value);
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function fill(selector, rows, empty) {
    const body = $(selector);
    if (rows.length) {
      body.replaceChildren(...rows);
      return;
    }
    const columns = body.closest('table').querySelectorAll('thead th').length;
    body.replaceChildren(el('tr', {class: 'empty'}, el('td', {colspan: columns, text: empty})));
  }

  function clock(when) {
    if (!when) return '';
    const date = when instanceof Date ? when : new Date(when);
    return Number.isNaN(date.getTime()) ? String(when) : date.toLocaleTimeString([], {hour12: false});
  }

  function shortId(id) {
    if (!id) return '';
    const bare = String(id).replace(/^sha256:/, '');
    return bare.length > 12 ? bare.slice(0, 12) : bare;
  }

  /* A container or image id (64 hex digits) as Docker shows it; names stay whole. */
  function shortTarget(target) {
    return /^(sha256:)?[0-9a-f]{64}$/.test(target || '') ? shortId(target) : target || '';
  }

  function human(bytes) {
    if (typeof bytes !== 'number') return '';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
  }

  function badge(text, kind) {
    return el('span', {class: `badge ${kind || text}`, text});
  }

  function note(name, text, kind) {
    const node = $(`#${name}-note`);
    node.textContent = text;
    node.className = `note ${kind || ''}`.trim();
  }

  // --- the API -------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, problem) {
      super(problem.detail || problem.message || problem.title || `HTTP ${status}`);
      this.status = status;
      this.code = problem.code || 'error';
    }
  }

  function aborted(err) {
    return err && err.name === 'AbortError';
  }

  function describe(err) {
    if (err instanceof ApiError) return `${err.code}: ${err.message}`;
    if (err instanceof TypeError) return 'the API did not answer';
    return String((err && err.message) || err);
  }

  const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function randomKey() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  /* fetch() with the token. A request the network dropped (a TypeError: Chromium aborts requests
     in flight with ERR_NETWORK_CHANGED when the host's interfaces change) is sent again, at most
     twice; a POST carries an Idempotency-Key, so a second send returns the same job. */
  async function request(method, path, {body, headers = {}} = {}) {
    const init = {
      method,
      headers: {Authorization: `Bearer ${state.token}`, Accept: 'application/json', ...headers},
      credentials: 'omit',
      cache: 'no-store',
      referrerPolicy: 'no-referrer',
      signal: state.session.signal,
    };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    if (method === 'POST') init.headers['Idempotency-Key'] = `console-${randomKey()}`;
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await fetch(path, init);
      } catch (err) {
        if (aborted(err) || !(err instanceof TypeError) || attempt >= 2) throw err;
        await pause(300 * (attempt + 1));
      }
    }
  }

  async function parse(response) {
    const text = await response.text();
    let body = {};
    try {
      body = text ? JSON.parse(text) : {};
    } catch {
      body = {detail: text.slice(0, 200)};
    }
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }

  function isJob(body) {
    return Boolean(
      body && typeof body === 'object' && typeof body.operation === 'string' &&
      typeof body.status === 'string' && body.links && typeof body.links.self === 'string' &&
      body.links.self.startsWith('/v1/jobs/'),
    );
  }

  const jobUrl = (job) => `/v1/jobs/${encodeURIComponent(job.id)}`;

  function outcome(job) {
    if (job.status === 'succeeded') return job.result;
    const error = job.error || {code: job.status, message: `the job was ${job.status}`};
    throw new ApiError(0, {code: error.code, detail: error.message});
  }

  /* A read: 200 with the resource, or (reads that are jobs) 202 with a job, or 200 with the
     finished job when the Prefer: wait was honoured. The job's result is the resource. */
  async function read(path) {
    const response = await request('GET', path, {headers: {Prefer: `wait=${READ_WAIT}`}});
    const body = await parse(response);
    if (response.status !== 202 && !isJob(body)) return body;
    let job = body;
    remember(job);
    while (!TERMINAL.has(job.status)) {
      if (job.status === 'queued' && job.waiting) {
        request('DELETE', jobUrl(job)).catch(() => {});
        throw new ApiError(503, {code: 'unavailable', detail: job.waiting});
      }
      job = await parse(await request('GET', `${jobUrl(job)}?wait=${READ_WAIT}`));
      remember(job);
    }
    return outcome(job);
  }

  /* A change: the job is followed (events stream or long-poll) until it ends. */
  async function submit(method, path, body) {
    const answer = await parse(await request(method, path, {body}));
    return isJob(answer) ? outcome(await watch(answer)) : answer;
  }

  function watch(job) {
    remember(job);
    if (TERMINAL.has(job.status)) return Promise.resolve(job);
    let pending = state.watchers.get(job.id);
    if (!pending) {
      const follow = state.streams < MAX_STREAMS ? viaEvents : viaWait;
      pending = follow(job).finally(() => state.watchers.delete(job.id));
      state.watchers.set(job.id, pending);
    }
    return pending;
  }

  async function viaWait(job) {
    let current = job;
    while (!TERMINAL.has(current.status)) {
      current = await parse(await request('GET', `${jobUrl(current)}?wait=${READ_WAIT}`));
      remember(current);
    }
    return current;
  }

  /* GET /v1/jobs/<id>/events read with fetch() and a stream reader: EventSource cannot send an
     Authorization header. Each event's data is the whole job. */
  async function viaEvents(job) {
    let last = job;
    const session = state.session;
    state.streams += 1;
    try {
      const response = await request('GET', `${jobUrl(job)}/events`, {
        headers: {Accept: 'text/event-stream'},
      });
      if (!response.ok || !response.body) await parse(response);
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, {stream: true}).replace(/\r\n/g, '\n');
        let cut = buffer.indexOf('\n\n');
        while (cut >= 0) {
          const data = buffer.slice(0, cut).split('\n')
            .filter((line) => line.startsWith('data:'))
            .map((line) => line.slice(5).replace(/^ /, ''))
            .join('\n');
          buffer = buffer.slice(cut + 2);
          cut = buffer.indexOf('\n\n');
          if (!data) continue; // a keep-alive comment
          last = JSON.parse(data);
          remember(last);
          if (TERMINAL.has(last.status)) {
            reader.cancel().catch(() => {});
            return last;
          }
        }
      }
    } catch (err) {
      if (aborted(err)) throw err;
      // the stream broke: long-poll the rest of the way
    } finally {
      if (session === state.session) state.streams -= 1;
    }
    return viaWait(last);
  }

  // --- jobs ----------------------------------------------------------------------------------

  function isRead(operation) {
    const op = state.ops.get(operation);
    return Boolean(op && op.method === 'GET');
  }

  function remember(job) {
    if (!job || !job.id) return;
    const before = state.jobs.get(job.id);
    if (before && TERMINAL.has(before.status) && !TERMINAL.has(job.status)) return;
    state.jobs.set(job.id, job);
    if (!state.tenant && job.tenant) {
      state.tenant = job.tenant;
      showWho();
    }
    const ended = TERMINAL.has(job.status);
    if (ended && ((before && !TERMINAL.has(before.status)) || (!before && state.primed))) {
      finished(job);
    }
    scheduleJobs();
  }

  /* A change finished: read again what it may have changed. */
  function finished(job) {
    if (!state.ops.has(job.operation) || isRead(job.operation)) return;
    for (const section of sectionsOf(job.operation)) refresh(section);
    if (state.admin) refresh('audit');
  }

  function sectionsOf(operation) {
    const [service, action] = operation.split('.');
    const family = action.split('_')[0];
    if (service === 'containers') {
      if (family === 'image') return ['images'];
      if (family === 'network') return ['networks'];
      if (family === 'volume') return ['volumes'];
      return action === 'commit' ? ['containers', 'images'] : ['containers'];
    }
    if (service === 'vms') {
      if (family === 'network') return ['networks'];
      if (family === 'pool' || family === 'volume') return ['volumes'];
      return ['vms'];
    }
    return [];
  }

  let jobsScheduled = false;

  function scheduleJobs() {
    if (jobsScheduled) return;
    jobsScheduled = true;
    requestAnimationFrame(() => {
      jobsScheduled = false;
      renderJobs();
    });
  }

  function took(job) {
    if (!job.started_at) return '';
    const end = job.finished_at ? new Date(job.finished_at) : new Date();
    const seconds = (end - new Date(job.started_at)) / 1000;
    return seconds >= 0 ? `${seconds.toFixed(1)} s` : '';
  }

  function jobSummary(job) {
    if (job.status === 'failed' || job.status === 'cancelled') {
      const error = job.error || {};
      return el('span', {class: 'error', text: `${error.code || job.status}: ${error.message || ''}`});
    }
    if (job.status === 'queued') return el('span', {text: job.waiting || 'waiting for a worker'});
    if (job.status === 'running') {
      const progress = job.progress ? JSON.stringify(job.progress).slice(0, 80) : '';
      return el('span', {text: progress || (job.node ? `on ${job.node}` : '')});
    }
    const result = job.result;
    if (!result || typeof result !== 'object') return el('span', {text: result ?? ''});
    if (typeof result.exit_code === 'number') {
      const output = `${result.stdout || ''}${result.stderr || ''}`.trim();
      return el('span', {},
        el('span', {class: result.exit_code ? 'error' : '', text: `exit ${result.exit_code} `}),
        output ? el('code', {text: output.length > 120 ? `${output.slice(0, 120)}…` : output}) : '');
    }
    if (typeof result.state === 'string') return el('span', {text: `${result.name || ''} ${result.state}`.trim()});
    for (const key of ['vms', 'containers', 'images', 'networks', 'volumes', 'pools']) {
      if (Array.isArray(result[key])) return el('span', {text: `${result[key].length} ${key}`});
    }
    if (result.name || result.id) return el('span', {text: result.name || shortId(result.id)});
    return el('span', {text: ''});
  }

  function renderJobs() {
    if (!state.token) return;
    const hideReads = $('#jobs-hide-reads').checked;
    const jobs = [...state.jobs.values()]
      .filter((job) => !(hideReads && isRead(job.operation)))
      .sort((a, b) => String(b.submitted_at).localeCompare(String(a.submitted_at)))
      .slice(0, JOB_ROWS);
    const rows = jobs.map((job) => el('tr', {
      class: `job ${job.status}`,
      'data-job-id': job.id,
      'data-operation': job.operation,
      'data-status': job.status,
    },
    el('td', {text: clock(job.submitted_at), title: `${job.submitted_at} · job ${job.id}`}),
    el('td', {text: job.operation}),
    el('td', {class: 'target', text: shortTarget(job.target), title: job.target || false}),
    el('td', {class: 'status'}, badge(job.status)),
    el('td', {text: took(job)}),
    el('td', {class: 'result'}, jobSummary(job))));
    fill('#jobs-body', rows, 'No jobs yet: run a container or define a VM.');
    if (state.jobs.size > 300) {
      const keep = [...state.jobs.values()]
        .sort((a, b) => String(b.submitted_at).localeCompare(String(a.submitted_at)))
        .slice(0, 200);
      state.jobs = new Map(keep.map((job) => [job.id, job]));
    }
  }

  async function pollJobs(session) {
    if (session !== state.session) return;
    try {
      const body = await parse(await request('GET', '/v1/jobs?limit=50'));
      for (const job of body.jobs || []) {
        remember(job);
        const live = !TERMINAL.has(job.status) && !isRead(job.operation);
        if (live && !state.watchers.has(job.id) && state.streams < MAX_STREAMS) {
          watch(job).catch(() => {});
        }
      }
      state.primed = true;
      note('jobs', `live · ${clock(new Date())}`);
    } catch (err) {
      if (aborted(err)) return;
      if (err instanceof ApiError && err.status === 401) {
        signOut('The token was refused (revoked?). Sign in again.');
        return;
      }
      note('jobs', describe(err), 'error');
    }
    state.polls += 1;
    if (state.admin && state.polls % AUDIT_EVERY_POLLS === 0) refresh('audit');
    state.pollTimer = setTimeout(() => pollJobs(session), JOB_POLL_MS);
  }

  // --- sections: read, then render -----------------------------------------------------------

  function refresh(name) {
    const running = state.loading.get(name);
    if (running) {
      running.again = true;
      return running.promise;
    }
    const entry = {again: false};
    entry.promise = (async () => {
      do {
        entry.again = false;
        await load(name);
      } while (entry.again && state.token);
    })().finally(() => {
      if (state.loading.get(name) === entry) state.loading.delete(name);
    });
    state.loading.set(name, entry);
    return entry.promise;
  }

  async function load(name) {
    const session = state.session;
    if (!session) return;
    note(name, 'loading…', 'busy');
    try {
      const data = await LOADERS[name]();
      if (session !== state.session) return;
      RENDERERS[name](data);
      if (name !== 'audit' || state.admin) note(name, `updated ${clock(new Date())}`);
    } catch (err) {
      if (aborted(err) || session !== state.session) return;
      note(name, describe(err), 'error');
    }
  }

  /* Two reads shown in one table: what one of them could not read is said in the note. */
  async function pair(first, second) {
    const settled = await Promise.allSettled([read(first), read(second)]);
    for (const one of settled) {
      if (one.status === 'rejected' && aborted(one.reason)) throw one.reason;
    }
    return settled;
  }

  function pairProblems(settled, labels) {
    const problems = settled
      .map((one, i) => (one.status === 'rejected' ? `${labels[i]}: ${describe(one.reason)}` : null))
      .filter(Boolean);
    return problems.length ? problems.join(' · ') : null;
  }

  const LOADERS = {
    vms: () => read('/v1/vms'),
    containers: () => read('/v1/containers'),
    images: () => read('/v1/images'),
    networks: () => pair('/v1/container-networks', '/v1/vm-networks'),
    volumes: () => pair('/v1/container-volumes', '/v1/storage-pools'),
    audit: loadAudit,
  };

  const RENDERERS = {
    vms(body) {
      state.vms = new Map((body.vms || []).map((vm) => [vm.name, vm]));
      renderVms();
    },
    containers(body) {
      renderContainers(body.containers || []);
    },
    images(body) {
      const rows = (body.images || []).map((image) => el('tr', {'data-id': image.id},
        el('td', {text: (image.tags || []).join(', ') || '<none>'}),
        el('td', {text: shortId(image.id), title: image.id}),
        el('td', {text: human(image.size)}),
        el('td', {text: image.created ? new Date(image.created).toLocaleString() : ''})));
      fill('#images-body', rows, 'No images.');
    },
    networks(settled) {
      const [docker, libvirt] = settled.map((one) => (one.status === 'fulfilled' ? one.value : {}));
      const rows = [
        ...(docker.networks || []).map((net) => el('tr', {'data-kind': 'container', 'data-name': net.name},
          el('td', {text: 'container'}),
          el('td', {text: net.name}),
          el('td', {text: `${net.driver || ''}${net.internal ? ' (internal)' : ''}`}),
          el('td', {text: (net.subnets || []).map((s) => s.subnet).filter(Boolean).join(', ')}),
          el('td', {text: `${Object.keys(net.containers || {}).length} container(s)`}))),
        ...(libvirt.networks || []).map((net) => el('tr', {'data-kind': 'vm', 'data-name': net.name},
          el('td', {text: 'VM'}),
          el('td', {text: net.name}),
          el('td', {text: `${net.mode || ''}${net.bridge ? ` on ${net.bridge}` : ''}`}),
          el('td', {text: net.subnet || ''}),
          el('td', {}, badge(net.active ? 'active' : 'inactive')))),
      ];
      fill('#networks-body', rows, 'No networks.');
      const problems = pairProblems(settled, ['container networks', 'VM networks']);
      if (problems) throw new Error(problems);
    },
    volumes(settled) {
      const [docker, libvirt] = settled.map((one) => (one.status === 'fulfilled' ? one.value : {}));
      const rows = [
        ...(docker.volumes || []).map((vol) => el('tr', {'data-kind': 'volume', 'data-name': vol.name},
          el('td', {text: 'container volume'}),
          el('td', {text: vol.name}),
          el('td', {text: vol.driver || ''}),
          el('td', {text: ''}),
          el('td', {text: vol.created ? new Date(vol.created).toLocaleString() : ''}))),
        ...(libvirt.pools || []).map((pool) => el('tr', {'data-kind': 'pool', 'data-name': pool.name},
          el('td', {text: 'storage pool'}),
          el('td', {text: pool.name}),
          el('td', {}, badge(pool.state || (pool.active ? 'active' : 'inactive'))),
          el('td', {text: pool.active ? `${human(pool.capacity_bytes)}, ${human(pool.available_bytes)} free, ${pool.volumes ?? 0} volume(s)` : ''}),
          el('td', {text: ''}))),
      ];
      fill('#volumes-body', rows, 'No volumes.');
      const problems = pairProblems(settled, ['container volumes', 'storage pools']);
      if (problems) throw new Error(problems);
    },
    audit() {
      renderAudit();
    },
  };

  // --- VMs -----------------------------------------------------------------------------------

  function vmOperation(action) {
    const known = state.ops.get(`vms.${action}`);
    if (known) return known;
    return action === 'undefine'
      ? {method: 'DELETE', path: '/v1/vms/<name>', summary: 'Remove a stopped VM'}
      : {method: 'POST', path: `/v1/vms/<name>/${action}`, summary: action};
  }

  function vmLabel(action, vm) {
    if (action === 'autostart') return vm.autostart ? 'autostart off' : 'autostart on';
    return action;
  }

  function renderVms() {
    if (!state.token) return;
    const vms = [...state.vms.values()].sort((a, b) => a.name.localeCompare(b.name));
    const rows = vms.map((vm) => {
      const busy = state.vmBusy.get(vm.name);
      const allowed = new Set(vm.allowed_actions || []);
      const buttons = VM_ACTIONS.map((action) => el('button', {
        type: 'button',
        class: `action ${action}`,
        'data-action': action,
        title: vmOperation(action).summary,
        disabled: Boolean(busy) || !allowed.has(action),
        text: vmLabel(action, vm),
        onclick: () => vmAction(vm.name, action),
      }));
      const error = state.vmErrors.get(vm.name);
      return el('tr', {'data-vm': vm.name, 'data-state': vm.state, 'data-busy': busy || false},
        el('td', {class: 'name', text: vm.name}),
        el('td', {class: 'state'}, badge(vm.state), busy ? el('span', {class: 'busy', text: ` ${busy}…`}) : null),
        el('td', {text: typeof vm.memory_mib === 'number' ? `${vm.memory_mib} MiB` : ''}),
        el('td', {text: vm.vcpus ?? ''}),
        el('td', {text: vm.node || ''}),
        el('td', {class: 'actions'}, ...buttons, error ? el('div', {class: 'error', text: error}) : null));
    });
    fill('#vms-body', rows, 'No VMs: define one above.');
  }

  async function vmAction(name, action) {
    const vm = state.vms.get(name);
    if (!vm || state.vmBusy.has(name)) return;
    const op = vmOperation(action);
    const body = action === 'autostart' ? {enabled: !vm.autostart} : {};
    state.vmBusy.set(name, action);
    state.vmErrors.delete(name);
    renderVms();
    try {
      const result = await submit(op.method, op.path.replace('<name>', encodeURIComponent(name)), body);
      if (result && result.state === 'undefined') state.vms.delete(name);
      else if (result && result.name) state.vms.set(result.name, {...state.vms.get(result.name), ...result});
    } catch (err) {
      if (aborted(err)) return;
      state.vmErrors.set(name, `${action}: ${describe(err)}`);
    } finally {
      state.vmBusy.delete(name);
      renderVms();
    }
  }

  async function defineVm(event) {
    event.preventDefault();
    const button = $('#vm-submit');
    const name = $('#vm-name').value.trim();
    const body = {
      name,
      memory_mib: Number($('#vm-memory').value),
      vcpus: Number($('#vm-vcpus').value),
      start: $('#vm-start').checked,
    };
    button.disabled = true;
    setStatus('#vm-status', `defining ${name}…`, 'busy');
    try {
      const vm = await submit('POST', '/v1/vms', body);
      if (vm && vm.name) state.vms.set(vm.name, vm);
      renderVms();
      setStatus('#vm-status', `${name} is ${(vm && vm.state) || 'defined'}`);
      $('#vm-name').value = '';
    } catch (err) {
      if (!aborted(err)) setStatus('#vm-status', describe(err), 'error');
    } finally {
      button.disabled = false;
    }
  }

  // --- containers ----------------------------------------------------------------------------

  function containerOperation(action) {
    const known = state.ops.get(`containers.${action}`);
    if (known) return known;
    return action === 'remove'
      ? {method: 'DELETE', path: '/v1/containers/<id>', summary: 'Remove a container'}
      : {method: 'POST', path: `/v1/containers/<id>/${action}`, summary: action};
  }

  function containerAllows(container, action) {
    const running = ['running', 'paused', 'restarting'].includes(container.state);
    return action === 'stop' ? running : !running;
  }

  function renderContainers(containers) {
    const rows = containers.map((container) => el('tr', {
      'data-id': container.id, 'data-name': container.name, 'data-state': container.state,
    },
    el('td', {text: container.name, title: container.id}),
    el('td', {text: container.image || ''}),
    el('td', {}, badge(container.state || 'unknown')),
    el('td', {text: container.status || ''}),
    el('td', {class: 'actions'}, ...CONTAINER_ACTIONS.map((action) => el('button', {
      type: 'button',
      class: `action ${action}`,
      'data-action': action,
      title: containerOperation(action).summary,
      disabled: !containerAllows(container, action),
      text: action,
      onclick: (event) => containerAction(event.target, container, action),
    })))));
    fill('#containers-body', rows, 'No containers (a finished run removes its own).');
  }

  async function containerAction(button, container, action) {
    const op = containerOperation(action);
    for (const other of button.parentElement.querySelectorAll('button')) other.disabled = true;
    note('containers', `${action} ${container.name}…`, 'busy');
    try {
      await submit(op.method, op.path.replace('<id>', encodeURIComponent(container.id)), {});
    } catch (err) {
      if (aborted(err)) return;
      note('containers', `${action} ${container.name}: ${describe(err)}`, 'error');
      return;
    }
    refresh('containers');
  }

  /* "echo hello", "sh -c 'sleep 1; echo done'" or a JSON array: the exec form. */
  function parseCommand(text) {
    const trimmed = text.trim();
    if (!trimmed) return [];
    if (trimmed.startsWith('[')) {
      const list = JSON.parse(trimmed);
      if (!Array.isArray(list) || !list.every((part) => typeof part === 'string')) {
        throw new Error('the command must be a list of strings');
      }
      return list;
    }
    return [...trimmed.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]);
  }

  function setStatus(selector, text, kind) {
    const node = $(selector);
    node.textContent = text;
    node.className = `note ${kind || ''}`.trim();
  }

  async function runContainer(event) {
    event.preventDefault();
    const button = $('#run-submit');
    const output = $('#run-output');
    const detach = $('#run-detach').checked;
    let command;
    try {
      command = parseCommand($('#run-command').value);
    } catch (err) {
      setStatus('#run-status', `command: ${err.message}`, 'error');
      return;
    }
    const body = {image: $('#run-image').value.trim()};
    if (command.length) body.command = command;
    if (detach) body.detach = true;
    button.disabled = true;
    output.hidden = true;
    setStatus('#run-status', 'submitting…', 'busy');
    try {
      const job = await parse(await request('POST', '/v1/containers', {body}));
      button.disabled = false;
      setStatus('#run-status', `job ${shortId(job.id)} ${job.status}…`, 'busy');
      const done = await watch(job);
      const result = outcome(done);
      if (detach) {
        setStatus('#run-status', `${result.name || shortId(result.id)} is ${result.state || 'started'}`);
      } else {
        setStatus('#run-status', `exited with code ${result.exit_code}`, result.exit_code ? 'error' : '');
        output.textContent = `${result.stdout || ''}${result.stderr || ''}` || '(no output)';
        output.hidden = false;
      }
    } catch (err) {
      if (!aborted(err)) setStatus('#run-status', describe(err), 'error');
    } finally {
      button.disabled = false;
    }
  }

  // --- audit ---------------------------------------------------------------------------------

  async function loadAudit() {
    if (state.admin === false) return null;
    const params = new URLSearchParams({limit: '500'});
    if (state.auditAfter) params.set('after', state.auditAfter);
    else params.set('since', new Date(Date.now() - 3600 * 1000).toISOString());
    for (let page = 0; page < 5; page += 1) {
      const response = await request('GET', `/v1/audit?${params}`);
      if (response.status === 403) {
        state.admin = false;
        showWho();
        return null;
      }
      const body = await parse(response);
      state.admin = true;
      const records = body.records || [];
      state.auditRecords.push(...records);
      if (records.length) state.auditAfter = records[records.length - 1].id;
      if (!body.next_cursor) break;
      params.delete('since');
      params.set('after', body.next_cursor);
    }
    state.auditRecords = state.auditRecords.slice(-500);
    showWho();
    return null;
  }

  function renderAudit() {
    const section = $('#audit');
    if (state.admin === false) {
      section.classList.add('denied');
      fill('#audit-body', [], 'Admins only: this token has no admin scope.');
      note('audit', 'admins only');
      return;
    }
    section.classList.remove('denied');
    const hideReads = $('#audit-hide-reads').checked;
    const records = state.auditRecords.filter((r) => !(hideReads && isRead(r.operation)));
    const rows = records.slice(-AUDIT_ROWS).reverse().map((r) => el('tr', {
      'data-operation': r.operation, 'data-outcome': r.outcome, 'data-job-id': r.job_id || '',
    },
    el('td', {class: 'nowrap', text: clock(r.time), title: r.time}),
    el('td', {text: r.tenant || ''}),
    el('td', {text: r.operation}),
    el('td', {text: shortTarget(r.target), title: r.target || false}),
    el('td', {text: r.decision}),
    el('td', {}, badge(r.outcome)),
    el('td', {text: r.actor || ''}),
    el('td', {class: 'nowrap', text: (r.job_id || '').slice(0, 8), title: r.job_id || false})));
    fill('#audit-body', rows, 'No audit records in the last hour.');
  }

  // --- session -------------------------------------------------------------------------------

  function showWho() {
    const parts = [state.tenant ? `tenant ${state.tenant}` : 'signed in'];
    if (state.admin) parts.push('admin');
    $('#whoami').textContent = parts.join(' · ');
  }

  async function loadOperations() {
    try {
      const body = await parse(await request('GET', '/v1/services'));
      for (const service of Object.values(body.services || {})) {
        for (const op of service.operations || []) {
          state.ops.set(op.name, {method: op.method, path: op.path, summary: op.summary});
        }
      }
    } catch (err) {
      if (aborted(err)) throw err;
      // without the catalog, buttons fall back to the documented paths
    }
  }

  async function signIn(token) {
    state.token = token;
    state.session = new AbortController();
    $('#login-error').textContent = '';
    try {
      await parse(await request('GET', '/v1/jobs?limit=1'));
    } catch (err) {
      const status = err instanceof ApiError ? err.status : 0;
      signOut(status === 401 ? 'This token was refused.'
        : status === 403 ? 'This token cannot read (it needs the read scope).'
          : describe(err));
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    $('#token').value = '';
    $('#login').hidden = true;
    $('#app').hidden = false;
    $('#session').hidden = false;
    showWho();
    await loadOperations();
    renderJobs();
    renderVms();
    pollJobs(state.session);
    for (const name of SECTIONS) refresh(name);
  }

  function signOut(message) {
    if (state.session) state.session.abort();
    clearTimeout(state.pollTimer);
    sessionStorage.removeItem(TOKEN_KEY);
    Object.assign(state, {
      token: null,
      session: null,
      ops: new Map(),
      jobs: new Map(),
      watchers: new Map(),
      streams: 0,
      pollTimer: null,
      polls: 0,
      primed: false,
      tenant: null,
      admin: null,
      vms: new Map(),
      vmBusy: new Map(),
      vmErrors: new Map(),
      auditRecords: [],
      auditAfter: null,
      loading: new Map(),
    });
    for (const body of document.querySelectorAll('#app tbody')) body.replaceChildren();
    for (const node of document.querySelectorAll('#app .note')) node.textContent = '';
    $('#run-output').hidden = true;
    $('#app').hidden = true;
    $('#session').hidden = true;
    $('#login').hidden = false;
    $('#login-error').textContent = message || '';
    $('#token').focus();
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('#login-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const token = $('#token').value.trim();
      if (token) signIn(token);
    });
    $('#logout').addEventListener('click', () => signOut('Signed out.'));
    $('#run-form').addEventListener('submit', runContainer);
    $('#vm-form').addEventListener('submit', defineVm);
    $('#jobs-hide-reads').addEventListener('change', renderJobs);
    $('#audit-hide-reads').addEventListener('change', () => {
      if (state.admin) renderAudit();
    });
    for (const button of document.querySelectorAll('[data-refresh]')) {
      button.addEventListener('click', () => refresh(button.dataset.refresh));
    }
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) signIn(saved);
    else $('#token').focus();
  });
})();
