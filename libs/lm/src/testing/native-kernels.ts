import { registerNativeKernels, type NativeKernelStatus } from '../kernels/index';

/**
 * For specs that train: run on the native kernels, as production does (`selectBackend('auto')`
 * registers them). Without the addon the spec runs on the much slower JS kernels — except in CI,
 * where the addon is built and its absence is a failure, not a slow fallback.
 */
export function useNativeKernelsLikeProduction(): NativeKernelStatus {
  const status = registerNativeKernels();
  if (!status.loaded && process.env.CI === 'true')
    throw new Error(`native kernels not loaded in CI: ${status.reason}`);
  return status;
}
