// The happy-hour draw of sdk/examples/happyhour, in AssemblyScript, bit for
// bit: single-mode rates double from 20:00 to 22:00 UTC+8 (host time), the
// miss shrinks (to nothing once the doubled rates pass 1,000,000, which
// renormalises them), and the award is the first whose running sum of
// weights exceeds hi64(SplitMix64(seed) * total). Total mode is a plain
// weighted draw over the awards in stock. See the Go example's comment for
// why a module reads time and not history.

import {
  checkDraw, drawMode, drawCount, drawSeed, drawTimeMs, awardRate, awardInStock,
  splitMix64, mulHi64, MODE_SINGLE, MODE_TOTAL, NO_AWARD, RATE_SCALE,
} from "./abi";

export { lottery_abi_version, input_ptr, input_cap } from "./abi";

const ZONE: i64 = 8 * 3600 * 1000;
const HAPPY_START: i64 = 20 * 3600 * 1000;
const HAPPY_END: i64 = 22 * 3600 * 1000;
const BOOST: u64 = 2;
const DAY: i64 = 24 * 3600 * 1000;

function happy(ms: i64): bool {
  let t = (ms + ZONE) % DAY;
  if (t < 0) t += DAY;
  return t >= HAPPY_START && t < HAPPY_END;
}

function weight(ptr: i32, mode: u8, i: i32, boost: u64): u64 {
  if (mode == MODE_TOTAL && !awardInStock(ptr, i)) return 0;
  return <u64>awardRate(ptr, i) * boost;
}

export function draw(ptr: i32, len: i32): i32 {
  const code = checkDraw(ptr, len);
  if (code != 0) return code;
  const mode = drawMode(ptr);
  const n = drawCount(ptr);
  const boost: u64 = mode == MODE_SINGLE && happy(drawTimeMs(ptr)) ? BOOST : 1;
  let sum: u64 = 0;
  for (let i = 0; i < n; i++) sum += weight(ptr, mode, i, boost);
  let total = sum;
  if (mode == MODE_SINGLE && total < RATE_SCALE) total = RATE_SCALE;
  if (total == 0) return NO_AWARD;
  const r = mulHi64(splitMix64(drawSeed(ptr)), total);
  let acc: u64 = 0;
  for (let i = 0; i < n; i++) {
    acc += weight(ptr, mode, i, boost);
    if (r < acc) return awardInStock(ptr, i) ? i : NO_AWARD;
  }
  return NO_AWARD;
}
