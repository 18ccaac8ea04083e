// The article's browser client: token in the AUTH cookie, then the WebSocket.

// From the article ("A sample code to set or change cookies in browser").
function setCookie(name, value, options = {}) {
  options = {
    path: '/',
    ...options
  };

  if (options.expires instanceof Date) {
    options.expires = options.expires.toUTCString();
  }

  let updatedCookie = encodeURIComponent(name) + "=" + encodeURIComponent(value);

  for (let optionKey in options) {
    updatedCookie += "; " + optionKey;
    let optionValue = options[optionKey];
    if (optionValue !== true) {
      updatedCookie += "=" + optionValue;
    }
  }

  document.cookie = updatedCookie;
}

const $ = (id) => document.getElementById(id);
let ws = null;

function log(line) {
  $('log').textContent += new Date().toISOString().slice(11, 23) + '  ' + line + '\n';
}

function setStatus(state, text) {
  $('status').className = state;
  $('status').textContent = text || state;
  const hasAuth = document.cookie.split('; ').some((c) => c.startsWith('AUTH='));
  $('cookie').textContent = hasAuth ? 'set' : 'not set';
}

function clearToken() {
  // As the article does on SESSION_STATUS.DISCONNECTED and FAILED.
  setCookie("AUTH", "", {'max-age': -1});
}

function connect() {
  if (ws) ws.close();
  const token = $('token').value.trim();
  if (token) {
    setCookie("AUTH", token, {secure: true, 'max-age': 3600});
  }
  const url = $('url').value.trim();
  log('opening ' + url + (token ? ' with the token in the AUTH cookie' : ' without setting a token'));
  setStatus('connecting');
  let opened = false;
  const socket = new WebSocket(url);
  ws = socket;
  socket.onopen = () => {
    opened = true;
    setStatus('open', 'open: the WebSocket passed nginx');
    log('open; sending "hello from the browser"');
    socket.send('hello from the browser');
  };
  socket.onmessage = (event) => {
    log('echo: ' + event.data);
    setStatus('echoed', 'echoed: ' + event.data);
  };
  socket.onerror = () => {
    log('error');
  };
  socket.onclose = (event) => {
    if (ws === socket) ws = null;
    clearToken();
    if (opened) {
      log('closed (code ' + event.code + '); AUTH cookie cleared');
      setStatus('disconnected');
    } else {
      // The browser does not expose the HTTP status: nginx's logs say why (403, wcs_auth=...).
      log('failed: the upgrade was refused (code ' + event.code + '); AUTH cookie cleared');
      setStatus('failed', 'failed: the WebSocket was refused');
    }
  };
}

function init() {
  const params = new URLSearchParams(location.search);
  const hash = new URLSearchParams(location.hash.slice(1));
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  $('origin').textContent = location.origin;
  $('url').value = params.get('wss') || scheme + '//' + location.host + '/wss';
  // The fragment never reaches the server: `#token=...` keeps the token out of logs.
  $('token').value = hash.get('token') || '';
  $('connect').onclick = connect;
  $('disconnect').onclick = () => { if (ws) ws.close(); };
  setStatus('idle');
}

init();
