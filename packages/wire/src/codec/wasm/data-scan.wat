;; The byte scans of the DATA codec (../data-codec.ts), in WebAssembly SIMD.
;;
;; Regenerate data-scan-wasm.ts after editing: pnpm --filter @pigeonpost/wire gen:wasm
;; (test/codec/data-scan-wasm.test.ts fails when the committed bytes differ).
;;
;; Memory (one instance per process, shared by every decoder and encoder;
;; JavaScript is single-threaded, so a call owns it until it returns):
;;   [0, IN_CAP)                  input: the bytes to scan, copied in by JS
;;   [IN_CAP, IN_CAP + 16)        padding: 16-byte loads may read past the input
;;   [OUT, OUT + 2*IN_CAP + 16)   encoder output (every byte becomes at most two,
;;                                plus the 16 bytes a whole-vector store may write
;;                                past the last byte)
;;   [RES, RES + 20)              results of the last call (five i32)
;; IN_CAP = 512 KiB; OUT = 512 KiB + 64; RES = OUT + 1 MiB + 64. Keep in step
;; with the constants in ../data-scan.ts.
(module
  (memory (export "memory") 25)

  ;; First CR or LF in [i, len), or len. Bytes in memory past len (stale
  ;; input or padding) are read but never reported.
  (func $find (param $i i32) (param $len i32) (result i32)
    (local $v v128)
    (local $m i32)
    (block $none
      (loop $blocks
        (br_if $none (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $v (v128.load align=1 (local.get $i)))
        (local.set $m
          (i8x16.bitmask
            (v128.or
              (i8x16.eq (local.get $v) (i8x16.splat (i32.const 13)))
              (i8x16.eq (local.get $v) (i8x16.splat (i32.const 10))))))
        (if (local.get $m)
          (then
            (local.set $i (i32.add (local.get $i) (i32.ctz (local.get $m))))
            (return (select (local.get $i) (local.get $len) (i32.lt_u (local.get $i) (local.get $len))))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $blocks)))
    (local.get $len))

  ;; Decoder, state MID at $p (inside a line, no CR pending) over input
  ;; [0, $len): the bytes up to the returned stop are all body. Stops at a
  ;; line start holding a period (state START, stop at the period), at $len
  ;; (state START after a CRLF ending there, CR after a CR ending there, else
  ;; MID). $lineLen: bytes of the current line before $p. Results at RES:
  ;; [state (0 MID, 1 CR, 2 START), bare CRs, bare LFs, long lines, line length].
  (func (export "decode") (param $p i32) (param $len i32) (param $lineLen i32) (param $maxLine i32) (result i32)
    (local $k i32)
    (local $ls i32)
    (local $bareCr i32)
    (local $bareLf i32)
    (local $long i32)
    (local $state i32)
    ;; Line length so far = $lineLen + (position - $ls).
    (local.set $ls (local.get $p))
    (block $done
      (loop $events
        (local.set $k (call $find (local.get $p) (local.get $len)))
        (if (i32.eq (local.get $k) (local.get $len))
          (then
            (local.set $p (local.get $len))
            (br $done)))
        (if (i32.eq (i32.load8_u (local.get $k)) (i32.const 10))
          (then
            ;; An LF not consumed as the end of a CRLF: bare, the line goes on.
            (local.set $bareLf (i32.add (local.get $bareLf) (i32.const 1)))
            (local.set $p (i32.add (local.get $k) (i32.const 1)))
            (br $events)))
        ;; A CR.
        (if (i32.eq (i32.add (local.get $k) (i32.const 1)) (local.get $len))
          (then
            ;; Last byte: the next one (next chunk) decides.
            (local.set $state (i32.const 1))
            (local.set $p (local.get $len))
            (br $done)))
        (if (i32.ne (i32.load8_u (i32.add (local.get $k) (i32.const 1))) (i32.const 10))
          (then
            (local.set $bareCr (i32.add (local.get $bareCr) (i32.const 1)))
            (local.set $p (i32.add (local.get $k) (i32.const 1)))
            (br $events)))
        ;; CRLF: the line ends.
        (local.set $p (i32.add (local.get $k) (i32.const 2)))
        (if (i32.gt_u
              (i32.add (local.get $lineLen) (i32.sub (local.get $p) (local.get $ls)))
              (local.get $maxLine))
          (then (local.set $long (i32.add (local.get $long) (i32.const 1)))))
        (local.set $lineLen (i32.const 0))
        (local.set $ls (local.get $p))
        (if (i32.eq (local.get $p) (local.get $len))
          (then
            (local.set $state (i32.const 2))
            (br $done)))
        (if (i32.eq (i32.load8_u (local.get $p)) (i32.const 46))
          (then
            (local.set $state (i32.const 2))
            (br $done)))
        (br $events)))
    (i32.store (i32.const 1572992) (local.get $state))
    (i32.store (i32.const 1572996) (local.get $bareCr))
    (i32.store (i32.const 1573000) (local.get $bareLf))
    (i32.store (i32.const 1573004) (local.get $long))
    (i32.store (i32.const 1573008)
      (i32.add (local.get $lineLen) (i32.sub (local.get $p) (local.get $ls))))
    (local.get $p))

  ;; Encoder: input [$p, $len) to OUT, dot-stuffed, every CR, LF and CRLF
  ;; written as CRLF. Returns the output length. $atLineStart: the next byte
  ;; starts a line. Results at RES: [at line start, skip LF (a CR ended the
  ;; input and went out as CRLF)].
  (func (export "encode") (param $p i32) (param $len i32) (param $atLineStart i32) (result i32)
    (local $o i32)
    (local $v v128)
    (local $m i32)
    (local $k i32)
    (local $skipLf i32)
    (local.set $o (i32.const 524352))
    (block $done
      (loop $lines
        (br_if $done (i32.ge_u (local.get $p) (local.get $len)))
        (if (local.get $atLineStart)
          (then
            (if (i32.eq (i32.load8_u (local.get $p)) (i32.const 46))
              (then
                (i32.store8 (local.get $o) (i32.const 46))
                (local.set $o (i32.add (local.get $o) (i32.const 1)))))
            (local.set $atLineStart (i32.const 0))))
        ;; Copy up to the next CR or LF, 16 bytes at a time (a store may
        ;; write bytes past the run; they are overwritten or past the end).
        (block $found
          (loop $blocks
            (local.set $v (v128.load align=1 (local.get $p)))
            (v128.store align=1 (local.get $o) (local.get $v))
            (local.set $m
              (i8x16.bitmask
                (v128.or
                  (i8x16.eq (local.get $v) (i8x16.splat (i32.const 13)))
                  (i8x16.eq (local.get $v) (i8x16.splat (i32.const 10))))))
            (if (local.get $m)
              (then
                (local.set $k (i32.add (local.get $p) (i32.ctz (local.get $m))))
                (br_if $found (i32.lt_u (local.get $k) (local.get $len)))
                ;; The break is past the input: the rest was copied.
                (local.set $o (i32.add (local.get $o) (i32.sub (local.get $len) (local.get $p))))
                (br $done)))
            (local.set $p (i32.add (local.get $p) (i32.const 16)))
            (local.set $o (i32.add (local.get $o) (i32.const 16)))
            (br_if $blocks (i32.lt_u (local.get $p) (local.get $len)))
            ;; Ran past the input: take back the bytes beyond it.
            (local.set $o (i32.sub (local.get $o) (i32.sub (local.get $p) (local.get $len))))
            (br $done)))
        ;; A CR or LF at $k: the run before it is out; write CRLF.
        (local.set $o (i32.add (local.get $o) (i32.sub (local.get $k) (local.get $p))))
        (i32.store16 (local.get $o) (i32.const 2573)) ;; CR LF, little-endian
        (local.set $o (i32.add (local.get $o) (i32.const 2)))
        (local.set $atLineStart (i32.const 1))
        (if (i32.eq (i32.load8_u (local.get $k)) (i32.const 10))
          (then (local.set $p (i32.add (local.get $k) (i32.const 1))))
          (else
            (if (i32.lt_u (i32.add (local.get $k) (i32.const 1)) (local.get $len))
              (then
                (local.set $p
                  (i32.add (local.get $k)
                    (select (i32.const 2) (i32.const 1)
                      (i32.eq (i32.load8_u (i32.add (local.get $k) (i32.const 1))) (i32.const 10))))))
              (else
                ;; A CR ending the input: an LF starting the next one is its LF.
                (local.set $p (local.get $len))
                (local.set $skipLf (i32.const 1))))))
        (br $lines)))
    (i32.store (i32.const 1572992) (local.get $atLineStart))
    (i32.store (i32.const 1572996) (local.get $skipLf))
    (i32.sub (local.get $o) (i32.const 524352)))
)
