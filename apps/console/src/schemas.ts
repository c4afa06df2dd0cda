// JSON schemas of the console's routes: Fastify validates requests and serializes responses
// with them, and the OpenAPI document at /docs is made from them, so the three never differ.
import { DRILL_NAMES, QUEUES, Scenario } from '@lifeboat/domain';
import { ROLES } from './auth.js';

export const ErrorBody = {
  $id: 'Error',
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string' }, message: { type: 'string' }, hint: { type: 'string' } },
    },
  },
} as const;

/** Shared response schemas by status: every route may answer these. */
export const errors = (...codes: number[]) =>
  Object.fromEntries(codes.map((c) => [c, { $ref: 'Error#', description: ERROR_TEXT[c] ?? 'error' }]));

const ERROR_TEXT: Record<number, string> = {
  400: 'the request does not validate; the message names the field',
  401: 'no token, or a token that is not accepted',
  403: 'the token is valid but its role may not do this',
  404: 'no such target, backup, report or job',
  409: 'refused by a rule (two-person deactivation, reconciliation first, a restore already running)',
  429: 'too many failed authentications from this address',
};

/** A free-form JSON object (manifests, reports): passed through whole. */
export const AnyObject = { type: 'object', additionalProperties: true } as const;

const nullable = <T extends object>(schema: T) => ({ anyOf: [schema, { type: 'null' }] }) as const;
const str = { type: 'string' } as const;
const int = { type: 'integer' } as const;
const num = { type: 'number' } as const;
const bool = { type: 'boolean' } as const;

export const TargetParams = {
  type: 'object',
  required: ['target'],
  properties: { target: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$' } },
} as const;

export const withParams = (extra: Record<string, object>) => ({
  type: 'object',
  required: ['target', ...Object.keys(extra)],
  properties: { ...TargetParams.properties, ...extra },
});

/** Ids of records in the store: plain file-name characters only (no `/`, no `..`). */
export const RecordId = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,200}$' } as const;

export const Me = {
  type: 'object',
  required: ['name', 'role'],
  properties: { name: str, role: { type: 'string', enum: [...ROLES] } },
} as const;

export const Targets = {
  type: 'object',
  required: ['targets'],
  properties: {
    targets: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'engine'],
        properties: { name: str, engine: nullable({ type: 'string', enum: ['sqlite', 'postgres'] }) },
      },
    },
  },
} as const;

const Verification = nullable({
  type: 'object',
  required: ['level', 'ok', 'at'],
  properties: { level: { type: 'string', enum: ['quick', 'full'] }, ok: bool, at: str },
});

export const BackupList = {
  type: 'object',
  required: ['backups'],
  properties: {
    backups: {
      type: 'array',
      items: {
        type: 'object',
        required: ['backupId', 'kind', 'createdAt', 'bytes', 'encrypted', 'verification'],
        properties: {
          backupId: str,
          kind: str,
          createdAt: str,
          reason: str,
          bytes: int,
          entries: int,
          encrypted: bool,
          verification: Verification,
        },
      },
    },
  },
} as const;

export const BackupTrigger = {
  type: 'object',
  additionalProperties: false,
  properties: {
    kind: { type: 'string', enum: ['full', 'database', 'state', 'pre-change'], default: 'full' },
    reason: { type: 'string', minLength: 1, maxLength: 500, default: 'console' },
  },
} as const;

export const VerifyBody = {
  type: 'object',
  additionalProperties: false,
  properties: { level: { type: 'string', enum: ['quick', 'full'], default: 'quick' } },
} as const;

export const Enqueued = {
  type: 'object',
  required: ['queue', 'jobId', 'created'],
  properties: { queue: str, jobId: str, created: bool, status: str },
} as const;

export const TimelineStep = {
  type: 'object',
  required: ['name', 'status'],
  properties: { name: str, status: str, startedAt: str, endedAt: str, durationMs: num, outcome: str },
} as const;

export const JobStatus = {
  type: 'object',
  required: ['queue', 'jobId', 'state', 'progress', 'result', 'error'],
  properties: {
    queue: str,
    jobId: str,
    state: { type: 'string', enum: ['waiting', 'active', 'delayed', 'completed', 'failed', 'unknown'] },
    attemptsMade: int,
    progress: nullable({
      type: 'object',
      properties: {
        phase: str,
        bytes: num,
        totalBytes: num,
        detail: str,
        timeline: { type: 'array', items: TimelineStep },
      },
    }),
    result: nullable(AnyObject),
    error: nullable({ type: 'object', required: ['code', 'message'], properties: { code: str, message: str } }),
  },
} as const;

export const JobParams = {
  type: 'object',
  required: ['queue', 'jobId'],
  properties: {
    queue: { type: 'string', enum: [...QUEUES] },
    jobId: { type: 'string', minLength: 1, maxLength: 300 },
  },
} as const;

export const RestoreTrigger = {
  type: 'object',
  additionalProperties: false,
  required: ['scenario'],
  properties: {
    scenario: { type: 'string', enum: [...Scenario.options] },
    backupId: { type: 'string', minLength: 1, maxLength: 200, default: 'latest' },
    pointInTime: { type: 'string', format: 'date-time' },
    destination: { type: 'string', enum: ['sandbox', 'production'], default: 'sandbox' },
    dryRun: { type: 'boolean', default: false },
    reason: { type: 'string', minLength: 1, maxLength: 500, default: 'console' },
    /** A production restore must name its target here, as a typed confirmation. */
    confirm: { type: 'string', maxLength: 100 },
  },
} as const;

export const RecordList = {
  type: 'object',
  required: ['items'],
  properties: {
    items: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'key'],
        properties: { id: str, key: str, at: str, summary: AnyObject },
      },
    },
  },
} as const;

export const ReconcileTrigger = {
  type: 'object',
  additionalProperties: false,
  properties: {
    apply: { type: 'boolean', default: false },
    /** The caller accepts the corrections under their own name. */
    signOff: { type: 'boolean', default: false },
  },
} as const;

export const DrillTrigger = {
  type: 'object',
  additionalProperties: false,
  required: ['drill'],
  properties: {
    drill: { type: 'string', enum: [...DRILL_NAMES] },
  },
} as const;

export const DrillList = {
  type: 'object',
  required: ['drills'],
  properties: {
    drills: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'drill', 'started_at', 'verdict', 'rto_seconds', 'rto_target', 'rpo_seconds', 'rpo_target'],
        properties: {
          id: str,
          drill: str,
          started_at: str,
          verdict: str,
          rto_seconds: nullable(num),
          rto_target: nullable(num),
          rpo_seconds: nullable(num),
          rpo_target: nullable(num),
        },
      },
    },
  },
} as const;

export const Performance = {
  type: 'object',
  required: ['rows'],
  properties: {
    rows: {
      type: 'array',
      items: {
        type: 'object',
        required: ['drill', 'scenario', 'targetRtoSeconds', 'actualRtoSeconds', 'status', 'drillId', 'at'],
        properties: {
          drill: str,
          scenario: str,
          targetRtoSeconds: num,
          actualRtoSeconds: nullable(num),
          status: { type: 'string', enum: ['PASS', 'FAIL', 'NOT RUN'] },
          drillId: nullable(str),
          at: nullable(str),
        },
      },
    },
  },
} as const;

export const Schedule = {
  type: 'object',
  required: ['runs'],
  properties: {
    runs: {
      type: 'array',
      items: { type: 'object', required: ['drill', 'at'], properties: { drill: str, at: str, cron: str } },
    },
  },
} as const;

export const Freshness = {
  type: 'object',
  required: ['newestVerified', 'newestBackup', 'ageSeconds', 'rpoTargetSeconds', 'status'],
  properties: {
    newestVerified: nullable({
      type: 'object',
      required: ['backupId', 'createdAt', 'verifiedAt'],
      properties: { backupId: str, createdAt: str, verifiedAt: str },
    }),
    newestBackup: nullable({
      type: 'object',
      required: ['backupId', 'createdAt'],
      properties: { backupId: str, createdAt: str },
    }),
    ageSeconds: nullable(num),
    rpoTargetSeconds: num,
    status: { type: 'string', enum: ['OK', 'STALE', 'NONE'] },
  },
} as const;

const KillSwitchEvent = {
  type: 'object',
  required: ['trigger', 'reason', 'timestamp', 'activated'],
  properties: { trigger: str, reason: str, timestamp: str, activated: bool, metadata: AnyObject },
} as const;

export const DeactivationRequest = {
  type: 'object',
  required: ['id', 'requestedBy', 'reason', 'requestedAt', 'status'],
  properties: {
    id: str,
    requestedBy: str,
    reason: str,
    requestedAt: str,
    status: { type: 'string', enum: ['pending', 'approved', 'expired', 'superseded'] },
    approvedBy: str,
    approvedAt: str,
    reconciliation: str,
  },
} as const;

export const KillSwitchView = {
  type: 'object',
  required: ['target', 'state', 'via', 'events', 'requests'],
  properties: {
    target: str,
    state: { type: 'string', enum: ['ON', 'OFF', 'AUTO'] },
    via: { type: 'string', enum: ['api', 'file'] },
    fallback: str,
    events: { type: 'array', items: KillSwitchEvent },
    requests: { type: 'array', items: DeactivationRequest },
  },
} as const;

export const ReasonBody = {
  type: 'object',
  additionalProperties: false,
  required: ['reason'],
  properties: { reason: { type: 'string', minLength: 1, maxLength: 500 } },
} as const;

export const EmptyBody = { type: 'object', additionalProperties: false, properties: {} } as const;

export const Queues = {
  type: 'object',
  required: ['mode', 'queues'],
  properties: {
    mode: { type: 'string', enum: ['embedded', 'distributed'] },
    queues: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'waiting', 'active', 'completed', 'failed', 'delayed'],
        properties: { name: str, waiting: int, active: int, completed: int, failed: int, delayed: int },
      },
    },
  },
} as const;

export const AuditEntries = {
  type: 'object',
  required: ['entries'],
  properties: { entries: { type: 'array', items: AnyObject } },
} as const;

export const AuditVerification = AnyObject;

export const Health = {
  type: 'object',
  required: ['status', 'app', 'version'],
  properties: { status: str, app: str, version: str, reason: str },
} as const;
