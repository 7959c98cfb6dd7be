/** A required environment variable, or a clear error naming it. */
export function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

/** LiveKit's API is called over https:// (wss:// is the client URL of the same server). */
export function livekitHttpUrl(url: string): string {
  return url.replace(/^wss:\/\//, 'https://').replace(/^ws:\/\//, 'http://');
}
