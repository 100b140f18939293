// Curated public surface of @pigeonpost/wire/node (filled in as parts land).
export { systemClock } from './clock.js';
