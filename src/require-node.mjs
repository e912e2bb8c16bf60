// Loaded first by `npm start` and `npm run history` (`node --import`): plain JavaScript, so that an
// older Node says what it lacks instead of failing on the TypeScript entry point with a stack.
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
// TypeScript runs unflagged from 22.18 on, and in 23 from 23.6 on.
if (major < 22 || (major === 22 && minor < 18) || (major === 23 && minor < 6)) {
  const message =
    `arc-responder needs Node 22.18 or later (it runs its TypeScript directly, and is tested on Node 24); this is Node ${process.versions.node} (${process.execPath}). ` +
    'npm ci installs Node 24 into node_modules/.bin through the install script of the "node" devDependency: run npm ci without --ignore-scripts (or allow that package\'s script, or run npm rebuild node), or put Node 24 first on PATH.';
  process.stderr.write(`${message}\n`);
  // The same as a JSON line on stdout, as every failed start writes it, for a pipeline that
  // collects the log alone.
  const line = {
    level: 'fatal',
    time: new Date().toISOString(),
    service: 'arc-responder',
    code: 'node_version',
  };
  process.stdout.write(`${JSON.stringify({ ...line, msg: `arc-responder could not start: ${message}` })}\n`);
  process.exit(1);
}
