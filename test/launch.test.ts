// Spawning launched commands: launches at once take turns of the event loop.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { spawnTurn } from '../lib/launch.js';
import { countTurns } from './helpers.js';

describe('spawn turns', () => {
  test('twenty launches at once spawn on twenty turns of the event loop, in the order they asked', async () => {
    const loop = countTurns();
    const order: number[] = [];
    const turns: number[] = [];
    await Promise.all(Array.from({ length: 20 }, (_, i) => spawnTurn().then(() => {
      order.push(i);
      turns.push(loop.turns());
    })));
    loop.stop();
    assert.deepEqual(order, Array.from({ length: 20 }, (_, i) => i));
    assert.equal(new Set(turns).size, 20, `turns: ${turns.join(' ')}`);
  });

});
