-- A one-time notice for the session's next page ("User bob created.", a token minted and not
-- yet shown), set before a redirect and cleared when shown: kept with the session, so a reload
-- does not show it again and a link cannot carry one. The web package decides its content;
-- a token in it is sealed with a key only the browser's cookie gives.
ALTER TABLE sessions ADD COLUMN flash TEXT NOT NULL DEFAULT '';
