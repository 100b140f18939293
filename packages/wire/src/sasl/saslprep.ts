/**
 * SASLprep (RFC 4013), the "stored strings" profile, as far as SCRAM and
 * user names need it. What is done:
 *
 * - RFC 4013 §2.1 mapping: non-ASCII spaces (RFC 3454 C.1.2) become U+0020;
 *   characters "commonly mapped to nothing" (B.1) are removed.
 * - §2.2 normalisation: Unicode NFKC (`String.prototype.normalize`).
 * - §2.3 prohibited output: ASCII and non-ASCII controls (C.2.1, C.2.2),
 *   private use (C.3), non-characters (C.4), surrogates (C.5), characters
 *   inappropriate for plain text (C.6) or canonical representation (C.7),
 *   display-changing and deprecated characters (C.8) and tags (C.9).
 * - §2.5 unassigned code points: refused (the stored-strings rule), judged by
 *   the Unicode version of the running Node, not Unicode 3.2 — so a few code
 *   points unassigned in 3.2 but assigned since are let through.
 * - §2.4 bidirectional check (RFC 3454 §6), approximated: "RandALCat" is any
 *   letter of a right-to-left script (Hebrew, Arabic, Syriac, Thaana, NKo,
 *   Samaritan, Mandaic, Adlam, …) or U+200F, and "LCat" any other letter.
 *   JavaScript regular expressions do not expose Bidi_Class, and exact
 *   tables for Unicode 3.2 are not worth their size here.
 */

// RFC 3454 C.1.2 non-ASCII space characters.
const nonAsciiSpace = /[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/gu;
// RFC 3454 B.1 commonly mapped to nothing.
// eslint-disable-next-line no-misleading-character-class -- with the u flag each code point is matched on its own, which is the intent
const mappedToNothing = /[\u00AD\u034F\u1806\u180B-\u180D\u200B-\u200D\u2060\uFE00-\uFE0F\uFEFF]/gu;
// RFC 3454 C.2.1, C.2.2, C.3, C.4, C.5, C.6, C.7, C.8, C.9 (C.1.2 cannot survive the mapping above).
const prohibited = new RegExp(
  // eslint-disable-next-line no-misleading-character-class -- with the u flag each code point is matched on its own, which is the intent
  [
    '[\\u0000-\\u001F\\u007F]', // C.2.1
    '[\\u0080-\\u009F\\u06DD\\u070F\\u180E\\u200C\\u200D\\u2028\\u2029\\u2060-\\u2063\\u206A-\\u206F\\uFEFF\\uFFF9-\\uFFFC\\u{1D173}-\\u{1D17A}]', // C.2.2
    '\\p{Co}', // C.3 private use
    '\\p{Noncharacter_Code_Point}', // C.4
    '\\p{Cs}', // C.5 (lone surrogates)
    '[\\uFFF9-\\uFFFD]', // C.6
    '[\\u2FF0-\\u2FFB]', // C.7
    '[\\u0340\\u0341\\u200E\\u200F\\u202A-\\u202E\\u206A-\\u206F]', // C.8
    '[\\u{E0001}\\u{E0020}-\\u{E007F}]', // C.9
    '\\p{Cn}', // §2.5 unassigned (stored strings)
  ].join('|'),
  'u',
);
// Right-to-left scripts. U+200F (RLM), the one RandALCat that is not a letter, is already refused by C.8.
const randAL = /[\p{Script=Hebrew}\p{Script=Arabic}\p{Script=Syriac}\p{Script=Thaana}\p{Script=Nko}\p{Script=Samaritan}\p{Script=Mandaic}\p{Script=Adlam}\p{Script=Hanifi_Rohingya}\p{Script=Mende_Kikakui}]/u;
const letter = /\p{L}/u;

export type SaslprepResult = { readonly ok: true; readonly value: string } | { readonly ok: false; readonly reason: string };

/**
 * Prepare `input` with SASLprep (RFC 4013, stored strings). Returns the
 * prepared string, or the reason it is refused. The reason names the rule,
 * never the input (which may be a password).
 */
export function saslprep(input: string): SaslprepResult {
  if (/\p{Cs}/u.test(input)) return { ok: false, reason: 'lone surrogate' };
  const mapped = input.replace(nonAsciiSpace, ' ').replace(mappedToNothing, '');
  const normalized = mapped.normalize('NFKC');
  if (prohibited.test(normalized)) return { ok: false, reason: 'prohibited character (RFC 4013 §2.3)' };
  const chars = [...normalized];
  const isRandAL = (c: string): boolean => letter.test(c) && randAL.test(c);
  if (chars.some(isRandAL)) {
    // RFC 3454 §6: no LCat at all, and RandALCat first and last.
    if (chars.some((c) => letter.test(c) && !randAL.test(c))) return { ok: false, reason: 'mixed bidirectional text (RFC 3454 §6)' };
    if (!isRandAL(chars[0] ?? '') || !isRandAL(chars[chars.length - 1] ?? '')) {
      return { ok: false, reason: 'right-to-left text must start and end with a right-to-left character (RFC 3454 §6)' };
    }
  }
  return { ok: true, value: normalized };
}
