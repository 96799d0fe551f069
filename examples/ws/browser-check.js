// browser-check.js drives the chat page in headless Chromium through a
// restart: it sends a message, sends SIGHUP to the server, and waits for the
// page to reconnect by itself to the new process and carry on.
//
//	apt-get install chromium && npm install playwright-core
//	go run ./examples/ws -addr 127.0.0.1:8090 &
//	node examples/ws/browser-check.js http://127.0.0.1:8090/ /tmp/ws-demo.pid
//
// .ci/browser-check does this in CI. The PID file may name a master (go
// run): the pid that greets the page is the one that must change.
const { chromium } = require('playwright-core');
const { execSync } = require('child_process');
const [url = 'http://127.0.0.1:8090/', pidFile = '/tmp/ws-demo.pid'] = process.argv.slice(2);
(async () => {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  const page = await browser.newPage();
  await page.goto(url);
  await page.waitForFunction(() => document.getElementById('state').textContent === 'connected');
  await page.waitForFunction(() => document.getElementById('log').textContent.includes('pid'));
  await page.fill('#msg', 'hello before the restart');
  await page.click('button');
  await page.waitForFunction(() => document.getElementById('log').textContent.includes('hello before the restart'));
  const greeting = 'server: you are talking to pid ';
  const greeted = await page.$$eval('#log div', (ds, g) =>
    ds.map(d => d.textContent).filter(l => l.startsWith(g)).map(l => l.slice(g.length)), greeting);
  if (greeted.length !== 1) throw new Error('greetings before the restart: ' + JSON.stringify(greeted));
  const pid = execSync('cat ' + pidFile).toString().trim();
  execSync('kill -HUP ' + pid);
  // The page sees close 1001, reconnects, and the new process greets it.
  await page.waitForFunction(([g, old]) => {
    const lines = [...document.querySelectorAll('#log div')].map(d => d.textContent);
    return lines.some(l => l.startsWith(g) && l.slice(g.length) !== old) &&
      document.getElementById('state').textContent === 'connected';
  }, [greeting, greeted[0]], { timeout: 15000 });
  await page.fill('#msg', 'hello after the restart');
  await page.click('button');
  await page.waitForFunction(() => document.getElementById('log').textContent.includes('hello after the restart'));
  const lines = await page.$$eval('#log div', ds => ds.map(d => d.textContent));
  console.log(JSON.stringify(lines, null, 1));
  const abnormal = lines.filter(l => l.startsWith('[connection closed')).length;
  console.log('abnormal closes shown:', abnormal);
  await page.screenshot({ path: require('path').join(require('os').tmpdir(), 'ws-restart.png') });
  await browser.close();
  if (abnormal > 0) process.exit(1);
})().catch(e => { console.error(e); process.exit(1); });
