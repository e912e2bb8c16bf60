# arc-responder in a container: the official Node 24 image runs the service's TypeScript directly,
# with the production dependencies only. See "Run it in a container" in the README.
#   docker build -t arc-responder .
#   docker run -p 3000:3000 -e INGEST_TOKEN=… -v arc-data:/app/data arc-responder
FROM node:24-bookworm-slim

WORKDIR /app

COPY package.json package-lock.json ./
# --omit=dev leaves out the `node` devDependency (the image has Node 24 already) and the test
# tools; no production dependency has an install script, so none needs to run.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

COPY src ./src

# The embedded SQLite history (`sqlite://./data/arc-responder.db`), writable by the `node` user.
RUN mkdir data && chown node:node data
VOLUME ["/app/data"]

# The image's `node` user, by number so that Kubernetes' runAsNonRoot can check it.
USER 1000:1000
EXPOSE 3000

# Liveness only (`/readyz` is for readiness probes): the process answers on its port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# What `npm start` runs, without npm in between: Node is process 1 and gets SIGTERM itself.
CMD ["node", "--import=./src/require-node.mjs", "--max-semi-space-size=8", "src/main.ts"]
