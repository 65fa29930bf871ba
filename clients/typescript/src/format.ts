/** Sizes and times as the dashboard shows them. */

const SIZE_UNITS = ['KiB', 'MiB', 'GiB', 'TiB'];

/** 1536 -> '1.5 KiB': binary units, one decimal; '—' for an unknown size. The same text
 * as the dashboard's (services/formatting.py), rounding halves to even as Python does. */
export function formatFileSize(size: number | null | undefined): string {
  if (size === null || size === undefined) return '—';
  let value = size;
  let unit = 'B';
  for (const larger of SIZE_UNITS) {
    if (value < 1024) break;
    value /= 1024;
    unit = larger;
  }
  return unit === 'B' ? `${size} B` : `${oneDecimal(value)} ${unit}`;
}

/** toFixed(1) rounds an exact half up (1.25 -> '1.3'); Python rounds it to even ('1.2').
 * A double is exactly halfway between two tenths only when it is a quarter: x.25, x.75. */
function oneDecimal(value: number): string {
  const quarters = value * 4;
  if (Number.isInteger(quarters) && quarters % 2 === 1) {
    const down = Math.floor(value * 10);
    return ((down % 2 === 0 ? down : down + 1) / 10).toFixed(1);
  }
  return value.toFixed(1);
}

export interface DateOptions {
  /** An IANA time zone (default 'UTC'), e.g. 'Europe/Berlin'. */
  timeZone?: string;
}

/** '2024-01-15T10:30:00.000Z' -> 'Mon 2024-01-15 10:30 UTC' (the dashboard's form), in
 * `timeZone` if given ('Mon 2024-01-15 11:30 GMT+1'); '—' for no time. */
export function formatBackupDate(time: string | Date | null | undefined,
                                 options: DateOptions = {}): string {
  if (time === null || time === undefined) return '—';
  const moment = typeof time === 'string' ? new Date(time) : time;
  if (Number.isNaN(moment.getTime())) return String(time);
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-GB', {
    timeZone: options.timeZone ?? 'UTC', weekday: 'short', year: 'numeric', month: '2-digit',
    day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZoneName: 'short',
  }).formatToParts(moment).map((part) => [part.type, part.value]));
  return `${parts.weekday} ${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute} ${parts.timeZoneName}`;
}
