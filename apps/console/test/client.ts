// A console API client for the tests that talk to a running console over HTTP.

export interface ApiAnswer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: answers of every route's shape, each checked by the expectations that read it
  json: any;
  headers: Headers;
}

export interface ConsoleClient {
  /** GET, or POST with a JSON body, as the holder of `token`. */
  call(token: string, path: string, body?: object): Promise<ApiAnswer>;
  /** Polls a job until it completed or failed; its final status. */
  finished(token: string, queue: string, jobId: string, timeoutMs?: number): Promise<ApiAnswer['json']>;
}

export function consoleClient(base: () => string): ConsoleClient {
  const call = async (token: string, path: string, body?: object): Promise<ApiAnswer> => {
    const res = await fetch(`${base()}${path}`, {
      method: body ? 'POST' : 'GET',
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let json: ApiAnswer['json'];
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
    return { status: res.status, json, headers: res.headers };
  };
  return {
    call,
    async finished(token, queue, jobId, timeoutMs = 240_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const { json } = await call(token, `/api/jobs/${queue}/${encodeURIComponent(jobId)}`);
        if (json?.state === 'completed' || json?.state === 'failed') return json;
        if (Date.now() > deadline) throw new Error(`job ${queue}/${jobId} did not finish: ${JSON.stringify(json)}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    },
  };
}
