import { describe, expect, it } from 'vitest';
import { parseDuration } from '../../src/config/duration.ts';

const SECOND = 1000;
const HOUR = 3600 * SECOND;
const DAY = 24 * HOUR;

describe('parseDuration', () => {
  it.each([
    ['P7D', 7 * DAY],
    ['PT12H', 12 * HOUR],
    ['PT10M', 10 * 60 * SECOND],
    ['P1M', 30 * DAY], // months are 30 days
    ['P1Y', 365 * DAY], // years are 365 days
    ['P2W', 14 * DAY],
    ['PT0.5S', 500],
    ['P1,5D', 1.5 * DAY], // ISO-8601 allows a decimal comma
    ['P1DT2H3M4S', DAY + 2 * HOUR + 3 * 60 * SECOND + 4 * SECOND],
  ])('%s is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each([
    ['30 days', 'is not an ISO-8601 duration such as P7D or PT12H'],
    ['7d', 'is not an ISO-8601 duration'],
    ['', 'is not an ISO-8601 duration'],
    ['P', 'is not an ISO-8601 duration'],
    ['PT', 'is not an ISO-8601 duration'],
    ['P1DT', 'is not an ISO-8601 duration'], // a T with no time after it
    ['P7Dx', 'is not an ISO-8601 duration'], // trailing garbage after a valid prefix
    ['PT1H2D', 'is not an ISO-8601 duration'], // units out of order
    ['P7D7D', 'is not an ISO-8601 duration'],
    [' P7D', 'is not an ISO-8601 duration'],
    ['P-1D', 'is not an ISO-8601 duration'],
    ['-P1D', 'is negative'],
    ['PT0S', 'is zero'],
    ['P0D', 'is zero'],
    ['PT0.0001S', 'is shorter than a millisecond'],
  ])('rejects %j: %s', (text, reason) => {
    expect(() => parseDuration(text)).toThrow(`${JSON.stringify(text)} ${reason}`);
  });
});
