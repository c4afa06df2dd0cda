// The kill-switch client: a target's HTTP API, else its state file.
export {
  createKillSwitch,
  HttpFileKillSwitch,
  type HttpFileKillSwitchOptions,
  KILL_SWITCH_FILE_TRIGGER,
} from './client.js';
