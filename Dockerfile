# syntax=docker/dockerfile:1
# KeyPool Operator image: Node 24 LTS, production dependencies only, non-root, no shell.
#   docker build -t keypool-operator:dev .
# test/integration/image.test.ts lays out what the final stage holds (from the COPY lines below)
# and starts the operator from it, so a runtime file or dependency missing here fails the suite.

ARG NODE_IMAGE=node:24.21.0-bookworm-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/nodejs24-debian12:nonroot

# Compile TypeScript to dist/ with the full dependency tree (the lock file decides every version).
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the `node` devDependency's installer is for checkouts; this image has Node 24.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json

# Production dependencies only, from the same lock file.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# Runtime: distroless (no shell, no package manager), user nonroot (65532).
FROM ${RUNTIME_IMAGE}
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# The status page's own files (tsc copies no .html/.js/.css); uPlot comes from node_modules.
COPY src/ui/assets ./dist/ui/assets
COPY package.json ./
COPY bin ./bin
COPY crds ./crds
USER 65532:65532
EXPOSE 8769 8081
ENTRYPOINT ["/nodejs/bin/node", "/app/bin/keypool.js"]
CMD ["operator"]
