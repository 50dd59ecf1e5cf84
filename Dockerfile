# quorumkv image: `docker build -t quorumkv:0.1.0 .` (the tag k8s/base/statefulset.yaml runs).
# Reproduced without a Docker engine by scripts/image-build.ts (node dist/scripts/image-build.js),
# which interprets this file: keep to the instructions it knows (FROM .. AS, WORKDIR, COPY
# [--from], RUN in shell form with relative paths only, ENV, USER, VOLUME, EXPOSE, ENTRYPOINT and
# CMD in exec form).

# --- build: compile TypeScript with the dev dependencies ---------------------------------------
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# npm install, not npm ci: the lock file cannot list every platform's optional binaries (the
# registry mirror lacks some, e.g. @swc/core-darwin-arm64), and npm ci refuses it; see .ci/run.
# lmdb and msgpackr-extract need no compiler here: their install script
# (node-gyp-build-optional-packages) finds the prebuilt binary in the optional package for this
# platform (@lmdb/lmdb-linux-x64, glibc and musl builds) and compiles nothing. Only a platform
# without a prebuild would fall back to node-gyp, which needs python3, make and g++ (not in the
# slim image).
RUN npm install --no-audit --no-fund
COPY tsconfig*.json ./
# One COPY per directory: COPY of a directory copies its contents, so `COPY src scripts ./`
# would spill both into /app.
COPY src src
COPY scripts scripts
RUN npm run build

# --- runtime: production dependencies and the compiled JavaScript only ---------------------------
FROM node:20-bookworm-slim AS runtime
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
# A fresh install without dev dependencies (typescript, jest, @swc/*) rather than pruning the
# build stage's node_modules: nothing of the toolchain can leak into the image.
RUN npm install --omit=dev --no-audit --no-fund
COPY --from=build /app/dist dist
# `quorumkv` on PATH, as the preStop in k8s/base/statefulset.yaml calls it, and `quorumkv-probe`, the lean entry
# point the exec probes run (the same code as `quorumkv health`, without loading the rest of the
# CLI: docs/BENCHMARKS.md). npm does not link a project's own "bin" on install, so link them by
# hand (tsc does not keep the execute bit).
RUN chmod +x dist/src/cli/main.js dist/src/cli/probe.js && mkdir -p bin && ln -s ../dist/src/cli/main.js bin/quorumkv && ln -s ../dist/src/cli/probe.js bin/quorumkv-probe
ENV PATH=/app/bin:$PATH
# The node's data directory (its default, ./data/<node-id>, would be on the read-only /app).
ENV QUORUMKV_DATA_DIR=/var/lib/quorumkv
# The data directory belongs to the runtime user, so an anonymous volume (plain `docker run`) is
# writable too; on Kubernetes the pod's fsGroup does this for the PersistentVolume.
WORKDIR /var/lib/quorumkv
RUN chown 10001:10001 .
WORKDIR /app
# A numeric user, and no user created: nothing needs a passwd entry (the node reads no home
# directory and runs no npm at run time), adding one would write /etc at build time for nothing,
# and numeric ids are what the pod's runAsUser/runAsNonRoot check (kubelet can verify a number is
# not 0; a name it cannot). Files under /app stay root-owned and read-only to this user, which
# suits readOnlyRootFilesystem.
USER 10001:10001
VOLUME /var/lib/quorumkv
EXPOSE 8080 9080
ENTRYPOINT ["quorumkv"]
CMD ["serve"]
