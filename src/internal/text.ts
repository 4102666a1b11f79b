import type { Option } from "effect"
import type { SessionRecord, SessionWrite } from "../SessionStore.js"

const encoder = new TextEncoder()

// Writes and records whose data is text: the bytes are made only when `data`
// is read. Classes, not object literals with a getter (which V8 builds about
// forty times slower, and in dictionary mode), since every save and every
// load of a text store makes one. A getter on the prototype is not copied by
// a spread, so `SessionStore.make` hands backends that read `data` a plain
// write (see `plainWrite`).

/** Data held as text, its UTF-8 bytes made on first read of `data`. */
class TextData {
  constructor(readonly text: string) {}
  private bytes: Uint8Array | undefined = undefined
  get data(): Uint8Array {
    return this.bytes ??= encoder.encode(this.text)
  }
}

/** @internal */
export class TextWrite extends TextData implements SessionWrite {
  constructor(text: string, readonly expiresAt: number, readonly principal: Option.Option<string>) {
    super(text)
  }
}

/** @internal */
export class TextRecord extends TextData implements SessionRecord {
  constructor(
    text: string,
    readonly version: number,
    readonly expiresAt: number,
    readonly principal: Option.Option<string>
  ) {
    super(text)
  }
}

/**
 * A write with its bytes as an own property, for a backend that reads
 * `data` (and may copy the write with a spread). A write that lost its bytes
 * on the way (a wrapper copied a `TextWrite` with a spread) gets them again
 * from its text.
 *
 * @internal
 */
export const plainWrite = (write: SessionWrite): SessionWrite => {
  if (!(write instanceof TextWrite) && write.data !== undefined) return write
  const data = write.data ?? encoder.encode(write.text!)
  return write.text === undefined
    ? { data, expiresAt: write.expiresAt, principal: write.principal }
    : { data, expiresAt: write.expiresAt, principal: write.principal, text: write.text }
}
