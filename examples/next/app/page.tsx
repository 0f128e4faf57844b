'use client';

import { useEffect, useRef, useState } from 'react';

type Status = 'idle' | 'connecting' | 'streaming' | 'reconnecting' | 'done' | 'stopped';

const colors: Record<Status, string> = {
  idle: 'gray',
  connecting: 'darkorange',
  streaming: 'green',
  reconnecting: 'darkorange',
  done: 'navy',
  stopped: 'crimson',
};

export default function Page() {
  const [prompt, setPrompt] = useState('Server-Sent Events');
  const [tokens, setTokens] = useState<{ index: number; text: string }[]>([]);
  const [status, setStatus] = useState<Status>('idle');
  const source = useRef<EventSource | null>(null);

  const close = (next: Status) => {
    source.current?.close();
    source.current = null;
    setStatus(next);
  };

  // Leaving the page closes the stream: the server stops generating.
  useEffect(() => () => source.current?.close(), []);

  const ask = () => {
    source.current?.close();
    setTokens([]);
    setStatus('connecting');
    const es = new EventSource(`/api/tokens?prompt=${encodeURIComponent(prompt)}`);
    source.current = es;
    es.onopen = () => setStatus('streaming');
    es.onmessage = (e) => {
      const token = JSON.parse(e.data) as { index: number; text: string };
      setTokens((list) => [...list, token]);
    };
    // The server ends the answer with `event: done`. Close here, or EventSource would reconnect
    // (with Last-Event-ID) and the server would have nothing left to send.
    es.addEventListener('done', () => {
      es.close();
      if (source.current === es) source.current = null;
      setStatus('done');
    });
    // A dropped connection: EventSource retries by itself and the route resumes after the last id.
    es.onerror = () => {
      if (source.current === es) setStatus(es.readyState === EventSource.CLOSED ? 'stopped' : 'reconnecting');
    };
  };

  const busy = status === 'connecting' || status === 'streaming' || status === 'reconnecting';
  return (
    <main>
      <h1>Streamed tokens</h1>
      <p>
        A Next.js route handler streams a (fake) model&apos;s answer with <code>@ssekit/web</code>; this page reads it
        with <code>EventSource</code>.
      </p>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          ask();
        }}
      >
        <input id="prompt" value={prompt} onChange={(e) => setPrompt(e.target.value)} size={40} />{' '}
        <button id="ask" type="submit" disabled={busy}>
          Ask
        </button>{' '}
        <button id="stop" type="button" disabled={!busy} onClick={() => close('stopped')}>
          Stop
        </button>
      </form>
      <p>
        Status:{' '}
        <strong id="status" data-status={status} style={{ color: colors[status] }}>
          {status}
        </strong>{' '}
        · tokens: <span id="count">{tokens.length}</span>
      </p>
      <p id="answer" style={{ whiteSpace: 'pre-wrap', minHeight: '6rem' }}>
        {tokens.map((t) => (
          <span key={t.index} data-index={t.index}>
            {t.text}
          </span>
        ))}
      </p>
    </main>
  );
}
