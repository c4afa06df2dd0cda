// Target control: the configured start and stop commands, and the wait for a healthy target.
export {
  CommandTargetControl,
  type CommandTargetControlOptions,
  createTargetControl,
  OUTPUT_LINES,
  redactSecrets,
} from './command.js';
