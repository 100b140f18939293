import { Lexer, NUL_REPLACEMENT } from './rfc822-lexer.js';

/**
 * One entry of an RFC 5322 §3.4 address list, in IMAP ENVELOPE form
 * (RFC 3501 §7.4.2): `name` (display name), `route` (obsolete source route,
 * with its '@'s), `mailbox` (local part) and `domain`. Values are byte
 * strings (one char per byte), undecoded: ENVELOPE carries them as they are.
 *
 * A group is a start entry with `mailbox` = the group name and `domain` =
 * null, then its members, then an end entry with everything null.
 */
export interface MailAddress {
  readonly name: string | null;
  readonly route: string | null;
  readonly mailbox: string | null;
  readonly domain: string | null;
  /** True when the input was not valid RFC 5322 and this entry is a best guess. */
  readonly invalid: boolean;
}

export interface ParseAddressOptions {
  /**
   * Fill a missing local part with `MISSING_MAILBOX`, a missing domain with
   * `MISSING_DOMAIN`, a broken `<...>` with domain `SYNTAX_ERROR`, as IMAP
   * servers do so that clients see that something was wrong. Default true.
   */
  readonly fillMissing?: boolean;
  /** Most addresses returned. Default unlimited. */
  readonly maxAddresses?: number;
}

interface Draft {
  name: string | null;
  route: string | null;
  mailbox: string | null;
  domain: string | null;
  invalid: boolean;
}

const emptyDraft = (): Draft => ({ name: null, route: null, mailbox: null, domain: null, invalid: false });

/**
 * RFC 5322 address-list parser whose results match Dovecot's, entry for entry:
 * groups, quoted local parts, comments used as the display name of a bare
 * addr-spec, obsolete routes and phrases, and the same recovery from broken
 * input (a lone word becomes a display name with `MISSING_MAILBOX`, and so on).
 */
class AddressParser {
  readonly lexer: Lexer;
  readonly out: MailAddress[] = [];
  addr: Draft = emptyDraft();

  constructor(
    data: string,
    readonly fillMissing: boolean,
  ) {
    this.lexer = new Lexer(data, true);
    this.lexer.nulReplacement = NUL_REPLACEMENT;
  }

  add(): void {
    // The draft itself becomes the entry (a spread copy cost more than the parse): a fresh one follows.
    this.out.push(Object.freeze(this.addr));
    this.addr = emptyDraft();
  }

  /** Dots anywhere in a local part (`a..b.`), as Dovecot accepts without STRICT_DOTS. */
  private nonStrictDotAtom(out: string[]): -1 | 0 | 1 {
    const lx = this.lexer;
    let ret: -1 | 0 | 1 = -1;
    do {
      while (lx.peek() === 0x2e) {
        out.push('.');
        lx.pos++;
        if (lx.atEnd) return 0;
        ret = 1;
      }
      if (lx.peek() === 0x40) break;
      ret = lx.atom(out);
    } while (ret > 0 && lx.peek() === 0x2e);
    return ret;
  }

  localPart(): -1 | 0 | 1 {
    const out: string[] = [];
    const ret = this.lexer.peek() === 0x22 ? this.lexer.quotedString(out) : this.nonStrictDotAtom(out);
    if (ret < 0) return -1;
    this.addr.mailbox = out.join('');
    return ret;
  }

  domain(): -1 | 0 | 1 {
    const out: string[] = [];
    const ret = this.lexer.domain(out);
    if (ret < 0) return -1;
    this.addr.domain = out.join('');
    return ret;
  }

  /** obs-domain-list = "@" domain *(*(CFWS / ",") [CFWS] "@" domain) */
  domainList(): -1 | 0 | 1 {
    const lx = this.lexer;
    let route = '';
    for (;;) {
      if (lx.atEnd) return 0;
      if (lx.peek() !== 0x40) break;
      if (route.length > 0) route += ',';
      const out: string[] = ['@'];
      const ret = lx.domain(out);
      route += out.join('');
      if (ret <= 0) return ret;
      while (lx.skipLwsp() > 0 && lx.peek() === 0x2c) lx.pos++;
    }
    this.addr.route = route;
    return 1;
  }

  /** "<" [ "@" route ":" ] local-part "@" domain ">" */
  angleAddr(): -1 | 0 | 1 {
    const lx = this.lexer;
    lx.pos++;
    if (lx.skipLwsp() <= 0) return -1;
    if (lx.peek() === 0x40) {
      if (this.domainList() > 0 && lx.peek() === 0x3a) {
        lx.pos++;
      } else {
        if (this.fillMissing) this.addr.route = 'INVALID_ROUTE';
        if (lx.atEnd) return -1;
      }
      if (lx.skipLwsp() <= 0) return -1;
    }
    if (lx.peek() !== 0x3e) {
      if (this.localPart() <= 0) return -1;
      if (lx.peek() === 0x40 && this.domain() <= 0) return -1;
    }
    if (lx.peek() !== 0x3e) return -1;
    lx.pos++;
    return lx.skipLwsp();
  }

  /** name-addr = [display-name] angle-addr */
  nameAddr(): -1 | 0 | 1 {
    const lx = this.lexer;
    const out: string[] = [];
    if (lx.phrase(out) <= 0 || lx.peek() !== 0x3c) return -1;
    const name = out.join('');
    this.addr.name = name === '' ? null : name;
    if (this.angleAddr() < 0) {
      if (this.fillMissing) this.addr.domain = 'SYNTAX_ERROR';
      this.addr.invalid = true;
    }
    return lx.atEnd ? 0 : 1;
  }

  /** addr-spec = local-part "@" domain, with a trailing (comment) as the display name. */
  addrSpec(): -1 | 0 | 1 {
    const lx = this.lexer;
    lx.lastComment = '';
    const quoted = lx.peek() === 0x22;
    let ret = this.localPart();
    let ret2: -2 | -1 | 0 | 1 = -2;
    if (ret <= 0) this.addr.invalid = true;
    if (ret !== 0 && !lx.atEnd && lx.peek() === 0x40) {
      ret2 = this.domain();
      if (ret2 <= 0) ret = ret2;
    }
    if (lx.lastComment.length > 0) {
      this.addr.name = lx.lastComment;
    } else if (ret2 === -2) {
      // A word without @domain: a mailbox if alone, else the start of a display name.
      const words: string[] = [this.addr.mailbox ?? '', ' '];
      const before = words.join('').length;
      lx.phrase(words);
      const joined = words.join('');
      if (joined.length !== before) {
        this.addr.mailbox = null;
        this.addr.name = joined;
      } else if (!quoted) {
        this.addr.domain = '';
      }
      this.addr.invalid = true;
      ret = -1;
    }
    return ret;
  }

  fixedAddress(): void {
    if (this.addr.mailbox === null) {
      this.addr.mailbox = this.fillMissing ? 'MISSING_MAILBOX' : '';
      this.addr.invalid = true;
    }
    if (this.addr.domain === null || this.addr.domain === '') {
      this.addr.domain = this.fillMissing ? 'MISSING_DOMAIN' : '';
      this.addr.invalid = true;
    }
    this.add();
  }

  /** mailbox = name-addr / addr-spec */
  mailbox(): -1 | 0 | 1 {
    const lx = this.lexer;
    const start = lx.pos;
    let ret = this.nameAddr();
    if (ret < 0) {
      lx.pos = start;
      ret = this.addrSpec();
      const a = this.addr;
      if (a.invalid && a.name === null && a.mailbox !== null && a.domain === null) {
        a.name = a.mailbox;
        a.mailbox = null;
      }
    }
    if (ret < 0) this.addr.invalid = true;
    this.fixedAddress();
    return ret;
  }

  /** group = display-name ":" [mailbox-list / CFWS] ";" [CFWS] */
  group(): -1 | 0 | 1 {
    const lx = this.lexer;
    const out: string[] = [];
    if (lx.phrase(out) <= 0 || lx.peek() !== 0x3a) return -1;
    // From here on it is a group, even if broken.
    lx.pos++;
    let ret = lx.skipLwsp();
    if (ret <= 0) this.addr.invalid = true;
    this.addr.mailbox = out.join('');
    this.add();
    if (ret > 0 && lx.peek() !== 0x3b) {
      for (;;) {
        this.mailbox();
        if (lx.atEnd || lx.peek() !== 0x2c) break;
        lx.pos++;
        if (lx.skipLwsp() <= 0) {
          ret = -1;
          break;
        }
      }
    }
    if (ret >= 0) {
      if (lx.atEnd || lx.peek() !== 0x3b) {
        ret = -1;
      } else {
        lx.pos++;
        ret = lx.skipLwsp();
      }
    }
    if (ret < 0) this.addr.invalid = true;
    this.add();
    return ret === 0 ? 0 : 1;
  }

  address(): -1 | 0 | 1 {
    const start = this.lexer.pos;
    const ret = this.group();
    if (ret >= 0) return ret;
    this.lexer.pos = start;
    // A failed group attempt must not leave a half-filled entry behind.
    this.addr = emptyDraft();
    return this.mailbox();
  }

  list(max: number): void {
    const lx = this.lexer;
    while (max-- > 0) {
      if (this.address() === 0) break;
      if (lx.atEnd || lx.peek() !== 0x2c) break;
      lx.pos++;
      const ret = lx.skipLwsp();
      if (ret <= 0) {
        if (ret < 0) this.fixedAddress();
        break;
      }
    }
  }
}

/**
 * Parse an address-list header value (From, To, Cc, …) given as a byte string
 * (one char per byte; use `Buffer.toString('latin1')`). Never throws: broken
 * input gives best-guess entries marked `invalid`.
 *
 * We wrote this parser rather than use an npm one: IMAP ENVELOPE must show
 * what Dovecot shows, and the npm parsers (addressparser, email-addresses)
 * decode, re-quote or drop entries where Dovecot keeps them, and have no
 * group start/end entries.
 */
export function parseAddressList(value: string, options: ParseAddressOptions = {}): MailAddress[] {
  const p = new AddressParser(value, options.fillMissing ?? true);
  if (p.lexer.skipLwsp() > 0) p.list(options.maxAddresses ?? Number.POSITIVE_INFINITY);
  return p.out;
}
