/** The public surface of the wire protocol: frames, errors and the link frame codec. */
export * from './frames.js';
export * from './errors.js';
export * from './encode.js';
export * from './decode.js';
export * from './control.js';
export * from './tokens.js';
export * from './routes.js';
export * from './spiffe.js';
export * from './names.js';
export * from './error-codes.js';
