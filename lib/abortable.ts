// Waiting for something on behalf of one caller, who may stop waiting (its AbortSignal) while
// the thing itself goes on for the others: a client's wait for a launch, a launch's wait for a
// dependency.

/** Waits for `promise`, or rejects with `signal.reason` as soon as `signal` aborts (the promise goes on). */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then((value) => {
      signal.removeEventListener('abort', onAbort);
      resolve(value);
    }, (err: unknown) => {
      signal.removeEventListener('abort', onAbort);
      reject(err as Error);
    });
  });
}
