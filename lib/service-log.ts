// A service's output: appended to its log file as it comes, and kept as a ring of recent lines
// (ANSI colours removed) for error pages. Optionally echoed to the terminal, prefixed with the
// service's name.

import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import { StringDecoder } from 'node:string_decoder';

const RING_LINES = 200;
// Colour and cursor sequences that dev servers print; they mean nothing on an HTML page.
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07/g;

export interface ServiceLogOptions {
  /** Where to append; undefined keeps the ring only. */
  file?: string | undefined;
  /** Called with each complete line, for streaming services' output to the terminal. */
  echo?: ((line: string) => void) | undefined;
  /** Told once if the log file cannot be written. */
  onFileError?: ((err: Error) => void) | undefined;
}

export class ServiceLog {
  private readonly ring: string[] = [];
  private stream: WriteStream | undefined;
  /**
   * One of each per output stream: a character split between two chunks must come out whole, and
   * an unfinished line on stdout must not be joined to one on stderr.
   */
  private readonly decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
  private readonly partial = { stdout: '', stderr: '' };

  constructor(private readonly options: ServiceLogOptions = {}) {
    if (options.file === undefined) return;
    try {
      mkdirSync(dirname(options.file), { recursive: true, mode: 0o700 });
      // Logs may hold secrets a dev server prints: readable by the user only.
      this.stream = createWriteStream(options.file, { flags: 'a', mode: 0o600 });
      this.stream.on('error', (err) => {
        this.stream = undefined;
        options.onFileError?.(err);
      });
    } catch (err) {
      options.onFileError?.(err as Error);
    }
  }

  /** Output of the service, in whatever pieces it arrives; the file gets the bytes as they are. */
  write(chunk: Buffer, from: 'stdout' | 'stderr' = 'stdout'): void {
    this.stream?.write(chunk);
    const text = this.partial[from] + this.decoders[from].write(chunk);
    const lines = text.split(/\r?\n/);
    this.partial[from] = lines.pop()!;
    // A line with no end in sight still belongs on an error page; cap what we hold of it.
    if (this.partial[from].length > 4096) {
      lines.push(this.partial[from]);
      this.partial[from] = '';
    }
    for (const line of lines) this.push(line);
  }

  /** A line of our own (launch, exit), marked so it stands out in the file. */
  note(line: string): void {
    this.flushPartial();
    this.stream?.write(`--- norikae: ${line} ---\n`);
  }

  /**
   * A line of our own that belongs with the service's output for whoever reads it (`logs`, the
   * dashboard, error pages): why a launch failed.
   */
  report(line: string): void {
    this.flushPartial();
    this.stream?.write(`--- norikae: ${line} ---\n`);
    this.push(`norikae: ${line}`);
  }

  /** The last `count` lines the service printed. */
  tail(count = 20): string[] {
    const unfinished = [this.partial.stdout, this.partial.stderr].filter(Boolean).map((line) => line.replace(ANSI, ''));
    const lines = unfinished.length > 0 ? [...this.ring, ...unfinished] : this.ring;
    return count > 0 ? lines.slice(-count) : []; // slice(-0) would be every line
  }

  close(): void {
    this.flushPartial();
    this.stream?.end();
    this.stream = undefined;
  }

  /** Ends the unfinished lines, bytes of an unfinished character included (they belong to this process, not the next). */
  private flushPartial(): void {
    for (const from of ['stdout', 'stderr'] as const) {
      const line = this.partial[from] + this.decoders[from].end();
      this.partial[from] = '';
      if (line !== '') this.push(line);
    }
  }

  private push(raw: string): void {
    const line = raw.replace(ANSI, '');
    this.ring.push(line);
    if (this.ring.length > RING_LINES * 2) this.ring.splice(0, this.ring.length - RING_LINES);
    this.options.echo?.(line);
  }
}
