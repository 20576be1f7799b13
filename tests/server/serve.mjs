// Starts minerva-serve for the node test suites and waits for its "listening on" line.
//   launch(SERVE, args, home) -> Promise<{ proc, port, url, log() }>
// home is the HOME the server sees (so ~/.minerva/config.json is the test's own). The promise
// rejects with the server's output when it exits first or does not listen within 60 s (it is then
// stopped).
import { spawn } from 'node:child_process';

export function launch(serve, args, home) {
  return new Promise((resolve, reject) => {
    const proc = spawn(serve, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HOME: home } });
    let log = '';
    const timer = setTimeout(() => {
      proc.kill('SIGTERM');  // never leave a server behind that did not come up
      reject(new Error('minerva-serve did not start:\n' + log));
    }, 60000);
    const onData = (d) => {
      log += d.toString();
      const m = log.match(/listening on http:\/\/[^:]+:(\d+)/);
      if (m && !proc.port) {
        proc.port = Number(m[1]);
        clearTimeout(timer);
        resolve({ proc, port: proc.port, url: `http://127.0.0.1:${proc.port}`, log: () => log });
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.on('exit', (code) => {
      if (!proc.port) {
        clearTimeout(timer);
        reject(new Error(`minerva-serve exited with ${code}:\n${log}`));
      }
    });
  });
}
