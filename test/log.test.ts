// The lines a person sees: each prefixed on its stream, and several lines (the routing table) in
// one write with the same text as one write per line.

import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { infoLines, memoryLog, streamLog } from '../lib/log.js';

/** A stream that keeps each write as it was given. */
function recorder(): Writable & { writes: string[] } {
  const writes: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      writes.push(chunk.toString('utf8'));
      done();
    },
  });
  return Object.assign(stream, { writes });
}

describe('streamLog', () => {
  test('prefixes each kind of line', () => {
    const stream = recorder();
    const log = streamLog(stream);
    log.info('a');
    log.warn('b');
    log.error('c');
    assert.deepEqual(stream.writes, ['norikae: a\n', 'norikae: warning: b\n', 'norikae: error: c\n']);
  });

  test('infoLines writes the text info would, line by line, in one write; nothing for no lines', () => {
    const lines = ['config /x/norikae.toml', '  app  http://app.localhost → 127.0.0.1:3000', '  web  http://web.localhost → 127.0.0.1:3001'];
    const each = recorder();
    for (const line of lines) streamLog(each).info(line);
    const once = recorder();
    infoLines(streamLog(once), lines);
    assert.equal(once.writes.length, 1);
    assert.equal(once.writes[0], each.writes.join(''));
    const none = recorder();
    infoLines(streamLog(none), []);
    assert.deepEqual(none.writes, []);
  });
});

test('infoLines goes through info, one line at a time, for a log without infoLines (one given to startApp, memoryLog)', () => {
  const seen: string[] = [];
  infoLines({ info: (line) => seen.push(line), warn: () => {}, error: () => {} }, ['a', 'b']);
  assert.deepEqual(seen, ['a', 'b']);
  const log = memoryLog();
  log.info('first');
  infoLines(log, ['a', 'b']);
  log.warn('c');
  assert.deepEqual(log.lines, ['first', 'a', 'b', 'warning: c']);
});
