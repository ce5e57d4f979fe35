/** Character-level mutations of text inputs (keys, tokens, URLs, request heads). */
import fc from 'fast-check';

export type TextMutation =
  | { kind: 'insert'; at: number; text: string }
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'replace'; at: number; text: string }
  | { kind: 'truncate'; at: number }
  | { kind: 'repeat'; at: number; length: number; times: number };

/** Characters that mean something to one parser or another, and some that mean nothing. */
const SPECIAL = [
  ':', '/', '//', '[', ']', '.', '-', '_', '*', '@', '%', '?', '#', '=', '+', ' ', '\t', '\r', '\n', '\r\n', '\0', '\\', '"', "'",
  '{', '}', ',', 'é', '\u2028', '\ud800', '\udfff', '😀', '\uffff', '0', '9', '65535', '65536', 'A', 'z',
];

const piece = fc.oneof(fc.constantFrom(...SPECIAL), fc.string({ minLength: 1, maxLength: 6 }), fc.string({ unit: 'binary', minLength: 1, maxLength: 3 }));

export const textMutationArbitrary: fc.Arbitrary<TextMutation> = fc.oneof(
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: piece }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), text: piece }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('repeat' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 8 }), times: fc.oneof(fc.integer({ min: 2, max: 20 }), fc.constant(3000)) }),
);

export function mutateText(text: string, mutations: readonly TextMutation[]): string {
  return mutations.reduce(applyOne, text);
}

function applyOne(text: string, mutation: TextMutation): string {
  const at = text.length === 0 ? 0 : mutation.at % (text.length + 1);
  switch (mutation.kind) {
    case 'insert':
      return text.slice(0, at) + mutation.text + text.slice(at);
    case 'delete':
      return text.slice(0, at) + text.slice(at + mutation.length);
    case 'replace':
      return text.slice(0, at) + mutation.text + text.slice(at + mutation.text.length);
    case 'truncate':
      return text.slice(0, at);
    case 'repeat':
      return text.slice(0, at) + text.slice(at, at + mutation.length).repeat(mutation.times) + text.slice(at + mutation.length);
  }
}

export const textMutations = fc.oneof({ weight: 1, arbitrary: fc.constant([]) }, { weight: 4, arbitrary: fc.array(textMutationArbitrary, { minLength: 1, maxLength: 4 }) });
