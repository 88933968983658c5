// ABI v1 for AssemblyScript modules: the exports every module has, the
// draw input layout (sdk/README.md), a validating reader and the integer
// helpers a draw needs. Copy this file with your module, or import it:
//
//   export { lottery_abi_version, input_ptr, input_cap } from "./abi";
//
// The module then exports its own draw(ptr, len): i32 (see happyhour.ts).
// Everything is plain loads at fixed offsets: no allocation, no strings, so
// the stub runtime is enough and nothing calls abort.

export const ABI_VERSION: i32 = 1;
export const MAX_INPUT_SIZE: i32 = 4096;

// Result codes (abi.Code).
export const NO_AWARD: i32 = -1;
export const CODE_BAD_INPUT: i32 = -2;
export const CODE_VERSION: i32 = -3;
export const CODE_UNSUPPORTED: i32 = -4;
export const CODE_INTERNAL: i32 = -5;

// Draw modes.
export const MODE_SINGLE: u8 = 1;
export const MODE_TOTAL: u8 = 2;

// Draw input layout.
export const DRAW_HEADER_SIZE: i32 = 24;
export const DRAW_AWARD_SIZE: i32 = 5;
export const MAX_AWARDS: i32 = 64;
export const RATE_SCALE: u64 = 1000000;

// The input buffer: MAX_INPUT_SIZE bytes in a static segment, 8-byte
// aligned so the 64-bit seed and time load aligned.
const input: usize = memory.data(MAX_INPUT_SIZE, 8);

export function lottery_abi_version(): i32 {
  return ABI_VERSION;
}

export function input_ptr(): i32 {
  return <i32>input;
}

export function input_cap(): i32 {
  return MAX_INPUT_SIZE;
}

// checkDraw validates the draw input at ptr (len bytes) in the order the
// Go decoder does, and returns 0 or the code to answer with. ptr must be
// input_ptr(): ABI v1 hosts never pass anything else.
export function checkDraw(ptr: i32, len: i32): i32 {
  if (<usize>ptr != input || len < 2 || len > MAX_INPUT_SIZE) return CODE_BAD_INPUT;
  if (<i32>load<u16>(ptr) != ABI_VERSION) return CODE_VERSION;
  if (len < DRAW_HEADER_SIZE) return CODE_BAD_INPUT;
  const mode = drawMode(ptr);
  if (mode != MODE_SINGLE && mode != MODE_TOTAL) return CODE_BAD_INPUT;
  const n = drawCount(ptr);
  if (n < 1 || n > MAX_AWARDS) return CODE_BAD_INPUT;
  if (load<u32>(ptr, 4) != 0) return CODE_BAD_INPUT;
  if (len != DRAW_HEADER_SIZE + DRAW_AWARD_SIZE * n) return CODE_BAD_INPUT;
  let sum: u64 = 0;
  for (let i = 0; i < n; i++) {
    const rate = awardRate(ptr, i);
    if (<u64>rate > RATE_SCALE) return CODE_BAD_INPUT;
    if (load<u8>(awardAt(ptr, i), 4) > 1) return CODE_BAD_INPUT;
    sum += rate;
  }
  if (mode == MODE_SINGLE && sum > RATE_SCALE) return CODE_BAD_INPUT;
  return 0;
}

// Field readers; valid after checkDraw returned 0.
export function drawMode(ptr: i32): u8 {
  return load<u8>(ptr, 2);
}

export function drawCount(ptr: i32): i32 {
  return <i32>load<u8>(ptr, 3);
}

export function drawSeed(ptr: i32): u64 {
  return load<u64>(ptr, 8);
}

export function drawTimeMs(ptr: i32): i64 {
  return load<i64>(ptr, 16);
}

function awardAt(ptr: i32, i: i32): i32 {
  return ptr + DRAW_HEADER_SIZE + DRAW_AWARD_SIZE * i;
}

export function awardRate(ptr: i32, i: i32): u32 {
  return load<u32>(awardAt(ptr, i));
}

export function awardInStock(ptr: i32, i: i32): bool {
  return load<u8>(awardAt(ptr, i), 4) == 1;
}

// splitMix64 is the SplitMix64 finaliser (lottery.SplitMix64).
export function splitMix64(x: u64): u64 {
  x += 0x9e3779b97f4a7c15;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9;
  x = (x ^ (x >> 27)) * 0x94d049bb133111eb;
  return x ^ (x >> 31);
}

// mulHi64 is the high 64 bits of the 128-bit product a*b (Go's
// bits.Mul64): hi64(r * n) maps a uniform r to [0, n) without modulo bias
// worth the name.
export function mulHi64(a: u64, b: u64): u64 {
  const aLo = a & 0xffffffff;
  const aHi = a >> 32;
  const bLo = b & 0xffffffff;
  const bHi = b >> 32;
  const ll = aLo * bLo;
  const lh = aLo * bHi;
  const hl = aHi * bLo;
  const mid = (ll >> 32) + (lh & 0xffffffff) + (hl & 0xffffffff);
  return aHi * bHi + (lh >> 32) + (hl >> 32) + (mid >> 32);
}
