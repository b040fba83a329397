# Usher's container image: compiled JavaScript and production dependencies on
# a distroless Node 24 runtime, running as a non-root user.
#
# No Docker engine? `npm run build && npm prune --omit=dev` then
# `node dist/main.js --config <file>` runs exactly what this image runs.

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the node@24 dev dependency would fetch a second Node; this image has one.
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY tools/copy-assets.ts tools/
COPY src ./src
RUN node_modules/.bin/tsc -p tsconfig.build.json && node tools/copy-assets.ts

FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts

FROM gcr.io/distroless/nodejs24-debian12:nonroot
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
USER nonroot
EXPOSE 8080 9090
ENTRYPOINT ["/nodejs/bin/node", "--enable-source-maps", "dist/main.js"]
CMD ["--config", "/etc/usher/config.yaml"]
