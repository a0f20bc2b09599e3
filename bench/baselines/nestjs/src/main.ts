import 'reflect-metadata';

import { LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import * as fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';

import { AppModule } from './app.module';

/** Nest's own logger writes to stdout; the first stdout line is reserved for "listening on PORT". */
const stderrLogger: LoggerService = {
  log: () => {},
  debug: () => {},
  verbose: () => {},
  warn: (message: unknown, ...rest: unknown[]) =>
    process.stderr.write(`warn: ${String(message)} ${rest.join(' ')}\n`),
  error: (message: unknown, ...rest: unknown[]) =>
    process.stderr.write(`error: ${String(message)} ${rest.join(' ')}\n`),
};

function parseArgs(argv: string[]): { host: string; port: number } {
  let host = '127.0.0.1';
  let port = 4000;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.includes('=') ? arg.split('=', 2) : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) {
        usage(`${flag} needs a value`);
      }
      return v;
    };
    if (flag === '--port') {
      port = Number(value());
      if (!Number.isInteger(port) || port < 0 || port > 65535) {
        usage(`bad --port: ${arg}`);
      }
    } else if (flag === '--host') {
      host = value();
    } else if (flag === '--help' || flag === '-h') {
      process.stdout.write('usage: node dist/main.js [--host 127.0.0.1] [--port 4000 | 0]\n');
      process.exit(0);
    } else {
      usage(`unknown argument: ${arg}`);
    }
  }
  return { host, port };
}

function usage(message: string): never {
  process.stderr.write(`${message}\nusage: node dist/main.js [--host 127.0.0.1] [--port 4000 | 0]\n`);
  process.exit(2);
}

/** The installed version of a package, even of one whose `exports` hide its package.json. */
function version(pkg: string): string {
  try {
    let dir = path.dirname(require.resolve(pkg));
    for (;;) {
      const file = path.join(dir, 'package.json');
      if (fs.existsSync(file)) {
        const meta = JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: string; version?: string };
        if (meta.name === pkg && meta.version) {
          return meta.version;
        }
      }
      const parent = path.dirname(dir);
      if (parent === dir) {
        return '?';
      }
      dir = parent;
    }
  } catch {
    return '?';
  }
}

async function bootstrap(): Promise<void> {
  const { host, port } = parseArgs(process.argv.slice(2));
  const app = await NestFactory.create(AppModule, { logger: stderrLogger });
  app.setGlobalPrefix('api');
  app.enableCors();
  await app.listen(port, host);
  const bound = (app.getHttpServer().address() as AddressInfo).port;
  process.stdout.write(
    `listening on ${bound}: ws://${host}:${bound}/ws (socket.io namespace /ws, path /socket.io), ` +
      `POST http://${host}:${bound}/api/dashboard/emit-event; ` +
      `@nestjs/core ${version('@nestjs/core')}, socket.io ${version('socket.io')}, ` +
      `engine.io ${version('engine.io')}, ws ${version('ws')}, node ${process.versions.node}\n`,
  );

  let stopping = false;
  const stop = (): void => {
    if (stopping) {
      return;
    }
    stopping = true;
    setTimeout(() => process.exit(0), 5000).unref();
    app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`error while closing: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

bootstrap().catch((err: unknown) => {
  process.stderr.write(`failed to start: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
