// What a person running norikae-splice sees: short lines on stderr (listening on…, the routing
// table, errors). Tracing for developers goes through `debug` (DEBUG=norikae:*) instead.

export interface Log {
  info(line: string): void;
  warn(line: string): void;
  error(line: string): void;
  /**
   * Several info lines in one write: a routing table of 1,000 services is one write, not 1,000.
   * Optional (a Log given to startApp may have only the three above): see `infoLines`.
   */
  infoLines?(lines: readonly string[]): void;
}

/** Several info lines: in one write where the log can, else one `info` each. */
export function infoLines(log: Log, lines: readonly string[]): void {
  if (log.infoLines !== undefined) log.infoLines(lines);
  else for (const line of lines) log.info(line);
}

/** Lines on a stream (stderr by default), prefixed so they stand out among services' output. */
export function streamLog(stream: NodeJS.WritableStream = process.stderr): Log {
  const write = (prefix: string, line: string): void => {
    stream.write(`${prefix}${line}\n`);
  };
  return {
    info: (line) => write('norikae: ', line),
    infoLines: (lines: readonly string[]) => {
      if (lines.length > 0) stream.write(lines.map((line) => `norikae: ${line}\n`).join(''));
    },
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
