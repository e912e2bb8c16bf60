// Loaded first by `npm start` and `npm run history` (`node --import`): plain JavaScript, so that an
// older Node says what it lacks instead of failing on the TypeScript entry point with a stack.
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
// TypeScript runs unflagged from 22.18 on, and in 23 from 23.6 on.
if (major < 22 || (major === 22 && minor < 18) || (major === 23 && minor < 6)) {
  process.stderr.write(
    `arc-responder needs Node 22.18 or later (it runs its TypeScript directly, and is tested on Node 24); this is Node ${process.versions.node} (${process.execPath}).\n` +
      'npm ci installs Node 24 into node_modules/.bin through the install script of the "node" devDependency: run npm ci without --ignore-scripts (or allow that package\'s script), or put Node 24 first on PATH.\n',
  );
  process.exit(1);
}
