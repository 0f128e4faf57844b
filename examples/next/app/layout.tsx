import type { Metadata } from 'next';
import type { ReactNode } from 'react';

export const metadata: Metadata = {
  title: 'ssekit — Next.js streamed tokens',
  description: 'A route handler streams tokens with @ssekit/web; the page reads them with EventSource.',
  icons: { icon: 'data:,' },
};

// System fonts only: nothing is fetched from outside (no next/font/google).
const body = { font: '15px/1.5 system-ui, sans-serif', margin: '2rem auto', maxWidth: '44rem', padding: '0 1rem' };

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body style={body}>{children}</body>
    </html>
  );
}
