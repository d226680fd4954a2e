// What a person running norikae-splice sees: short lines on stderr (listening on…, the routing
// table, errors). Tracing for developers goes through `debug` (DEBUG=norikae:*) instead.

export interface Log {
  info(line: string): void;
  warn(line: string): void;
  error(line: string): void;
}

/** Lines on a stream (stderr by default), prefixed so they stand out among services' output. */
export function streamLog(stream: NodeJS.WritableStream = process.stderr): Log {
  const write = (prefix: string, line: string): void => {
    stream.write(`${prefix}${line}\n`);
  };
  return {
    info: (line) => write('norikae: ', line),
    warn: (line) => write('norikae: warning: ', line),
    error: (line) => write('norikae: error: ', line),
  };
}

/** A log that keeps its lines, for tests and for callers that print them later. */
export function memoryLog(): Log & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (line) => lines.push(line),
    warn: (line) => lines.push(`warning: ${line}`),
    error: (line) => lines.push(`error: ${line}`),
  };
}
