// The page is a client of the public JSON API: every call here is one a script could make.
// The API key lives in sessionStorage (this tab only) and goes in the X-API-Key header.

const KEY = "gaitlab-api-key";

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail);
    this.status = status;
    this.code = code;
  }
}

export const key = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

let onUnauthorized = () => {};
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

function headers() {
  const value = key.get();
  return value ? { "X-API-Key": value } : {};
}

async function errorOf(response) {
  let code = `http_${response.status}`;
  let detail = response.statusText || "request failed";
  try {
    const body = await response.json();
    code = body.error ?? code;
    detail = body.detail ?? detail;
  } catch {
    // not JSON: keep the status text
  }
  if (response.status === 401 || response.status === 403) onUnauthorized(response.status, detail);
  return new ApiError(response.status, code, detail);
}

export async function call(method, path, body) {
  const response = await fetch(path, { method, headers: headers(), body });
  if (!response.ok) throw await errorOf(response);
  if (response.status === 204) return null;
  return response.json();
}

// An image behind the API key: fetched with the key, shown through an object URL. URLs are
// kept by group, and a view releases its group's before it draws new ones.
const objectUrls = new Map();

export async function imageUrl(path, group = "default") {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) throw await errorOf(response);
  const url = URL.createObjectURL(await response.blob());
  if (!objectUrls.has(group)) objectUrls.set(group, []);
  objectUrls.get(group).push(url);
  return url;
}

export function releaseImages(group = "default") {
  for (const url of objectUrls.get(group) ?? []) URL.revokeObjectURL(url);
  objectUrls.delete(group);
}

// A multipart upload with upload progress (fetch cannot report it): resolves to the JSON body.
export function upload(method, path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open(method, path);
    for (const [name, value] of Object.entries(headers())) request.setRequestHeader(name, value);
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    request.onload = async () => {
      try {
        const response = new Response(request.response, {
          status: request.status,
          headers: { "content-type": request.getResponseHeader("content-type") ?? "" },
        });
        if (response.ok) resolve(await response.json());
        else reject(await errorOf(response));
      } catch (error) {
        reject(new ApiError(request.status, "bad_response", `unreadable answer: ${error.message}`));
      }
    };
    const failed = (detail) => () => reject(new ApiError(0, "network", detail));
    request.onerror = failed("the service could not be reached");
    request.onabort = failed("the upload was cancelled");
    request.ontimeout = failed("the upload timed out");
    request.send(form);
  });
}
