-- Orthanc auto-routing for pneumocxr (docs/PACS.md): every chest radiograph Orthanc stores is
-- sent to the pneumocxr DICOM node, the DicomModalities entry named "pneumocxr".
-- Load it with "LuaScripts": ["route-to-pneumocxr.lua"] in Orthanc's configuration.

local RADIOGRAPHS = { CR = true, DX = true, DR = true, RG = true }
local CHEST_WORDS = { "CHEST", "THORAX", "THORAC", "LUNG", "TORAX" }

local function isChest(part)
   if part == nil or part == "" then
      return true  -- many modalities leave it empty: the node's own rules decide
   end
   part = string.upper(part)
   for _, word in ipairs(CHEST_WORDS) do
      if string.find(part, word, 1, true) then
         return true
      end
   end
   return false
end

function OnStoredInstance(instanceId, tags, metadata, origin)
   -- The node's results (SR, Secondary Capture) are no radiographs and never go back to it.
   if RADIOGRAPHS[tags["Modality"] or ""] and isChest(tags["BodyPartExamined"]) then
      SendToModality(instanceId, "pneumocxr")
   end
end
