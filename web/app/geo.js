// Position from navigator.geolocation. Only the latest fix is kept, in memory: no trail is
// stored on the phone (the server has it; the offline queue holds only unsent check-ins).

const listeners = new Set();
let last = null; // {lat, lon, accuracy_m, at}
let lastError = null;
let watchId = null;

function fixFrom(pos) {
  return {
    lat: pos.coords.latitude,
    lon: pos.coords.longitude,
    accuracy_m: Number.isFinite(pos.coords.accuracy) ? Math.round(pos.coords.accuracy * 10) / 10 : null,
    at: Date.now(),
  };
}

function errorText(err) {
  if (!('geolocation' in navigator)) return 'This browser cannot tell your location.';
  if (err && err.code === 1) return 'Location is blocked: allow location for this site in your browser settings.';
  if (err && err.code === 3) return 'No location fix yet (timed out). Move into the open and try again.';
  return 'Your location is unavailable right now.';
}

function notify() {
  listeners.forEach((fn) => fn(last, lastError));
}

const OPTIONS = { enableHighAccuracy: true, maximumAge: 10_000, timeout: 15_000 };

export function lastFix() {
  return last;
}

export function error() {
  return lastError;
}

/** Follows the position while `fn` is subscribed; returns the unsubscribe function. */
export function watch(fn) {
  listeners.add(fn);
  if (watchId === null && 'geolocation' in navigator) {
    watchId = navigator.geolocation.watchPosition(
      (pos) => {
        last = fixFrom(pos);
        lastError = null;
        notify();
      },
      (err) => {
        lastError = errorText(err);
        notify();
      },
      OPTIONS,
    );
  }
  fn(last, lastError);
  return () => {
    listeners.delete(fn);
    if (!listeners.size && watchId !== null) {
      navigator.geolocation.clearWatch(watchId);
      watchId = null;
    }
  };
}

/** A fix no older than `maxAgeMs`, asking the device if needed; falls back to the last fix
 * (whatever its age) and resolves to null only when there has never been one. */
export function current(maxAgeMs = 30_000) {
  if (last && Date.now() - last.at <= maxAgeMs) return Promise.resolve(last);
  if (!('geolocation' in navigator)) {
    lastError = errorText(null);
    return Promise.resolve(last);
  }
  return new Promise((resolve) => {
    navigator.geolocation.getCurrentPosition(
      (pos) => {
        last = fixFrom(pos);
        lastError = null;
        notify();
        resolve(last);
      },
      (err) => {
        lastError = errorText(err);
        notify();
        resolve(last);
      },
      { ...OPTIONS, maximumAge: maxAgeMs, timeout: 10_000 },
    );
  });
}
