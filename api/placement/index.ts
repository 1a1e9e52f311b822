/** The placement API (to be written: see issue 13). */
import type { ServicePlugin } from '../app';

export const placementApi: ServicePlugin = async () => {};
