// The logging interface protocol code writes to: pino's call shape, so production passes pino and
// the simulator a recorder. (The pino wiring itself lives in src/log.ts.)

export interface Logger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
