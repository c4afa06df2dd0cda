// Alerts as a JSON POST to a webhook: Slack's incoming webhooks read `text`; other
// receivers (PagerDuty bridges, Alertmanager relays, a chat bot) get the fields beside it.

export interface Alert {
  /** One line for people: what happened and where to look. */
  text: string;
  kind: 'drill_failed' | 'target_missed' | 'backup_stale' | 'schedule_never_fires' | 'schedule_rejected';
  target: string;
  [field: string]: unknown;
}

export interface AlertSender {
  /** Sends an alert; never throws (an alert that cannot be sent is logged, not fatal). */
  send(alert: Alert): Promise<{ sent: boolean; detail: string }>;
}

const TIMEOUT_MS = 5000;

export class WebhookAlertSender implements AlertSender {
  constructor(
    private readonly url: string,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  async send(alert: Alert): Promise<{ sent: boolean; detail: string }> {
    try {
      const res = await this.fetchImpl(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(alert),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
      return { sent: res.ok, detail: `HTTP ${res.status}` };
    } catch (err) {
      return { sent: false, detail: (err as Error).message };
    }
  }
}

/** The webhook named by the environment variable, or null when it is not set. */
export function alertSenderFromEnv(variable: string, env: NodeJS.ProcessEnv = process.env): AlertSender | null {
  const url = env[variable];
  return url ? new WebhookAlertSender(url) : null;
}
