// The runbook's three recovery scenarios ("Recovery Procedures") as ordered steps.
import type { Scenario } from '@lifeboat/domain';
import type { PlanStep } from './plan.js';
import {
  activateKillSwitch,
  activateKillSwitchRemote,
  checkDestinationEmpty,
  fetchAndVerify,
  healthCheck,
  killSwitchOnInStaging,
  type RunState,
  readLastState,
  readyToTrade,
  reconcileStep,
  restoreDatabaseStaging,
  restoreStateFiles,
  rollForward,
  selectBackup,
  startShadow,
  stopTarget,
  swapDatabase,
  swapInFiles,
} from './steps.js';

export function planFor(scenario: Scenario, s: RunState): PlanStep[] {
  switch (scenario) {
    // Scenario 1 (RTO 5 min): the process died; its data is sound.
    case 'app-crash':
      return [
        activateKillSwitch(s),
        readLastState(s),
        startShadow(s, true),
        healthCheck(s),
        reconcileStep(s, false),
        readyToTrade(s),
      ];
    // Scenario 2 (RTO 15 min): the database is damaged; the rest of the target is not.
    case 'db-corruption':
      return [
        activateKillSwitch(s),
        stopTarget(s),
        selectBackup(s),
        fetchAndVerify(s),
        restoreDatabaseStaging(s),
        rollForward(s),
        swapDatabase(s),
        restoreStateFiles(s),
        startShadow(s, false),
        healthCheck(s),
        reconcileStep(s, false),
        readyToTrade(s),
      ];
    // Scenario 3 (RTO 30 min): the host is gone; everything comes from the object store.
    case 'server-loss':
      return [
        activateKillSwitchRemote(s),
        checkDestinationEmpty(s),
        selectBackup(s),
        fetchAndVerify(s),
        restoreDatabaseStaging(s),
        rollForward(s),
        killSwitchOnInStaging(s),
        swapInFiles(s),
        startShadow(s, false),
        healthCheck(s),
        reconcileStep(s, true),
        readyToTrade(s),
      ];
  }
}
